"""Run folders and model folders: layout, atomic file writes, saving and loading (safetensors + JSON)."""
