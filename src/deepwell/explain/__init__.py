"""Explanations: per-row attributions (Integrated Gradients, `attributions.py`), global permutation importance
(`importance.py`), and what `deepwell explain`, `Model.explain`, the server and the report call (`run.py`)."""
