"""The `deepwell` command: thin typer commands that call the Python API and render results with rich."""
