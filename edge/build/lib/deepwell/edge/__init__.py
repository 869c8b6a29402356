"""The edge runtime: an exported model (`deepwell export`) run with numpy and onnxruntime alone.

Importing `deepwell.edge` imports only the standard library, numpy and onnxruntime; Pillow, soundfile and
`tokenizers` are imported when a model has image, audio or text columns. Never torch, pandas or scikit-learn
(a test runs it in a virtual environment without them). `load(folder).predict(rows)` takes what the full
package's `Model.predict` takes (CSV/TSV/JSONL files, records, image and audio files or bytes) and gives the same
outputs, per-row errors and messages.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load", "EdgeModel", "EdgePredictions", "EdgeError"]


def __getattr__(name: str) -> Any:
    if name in ("load", "EdgeModel", "EdgePredictions"):
        from deepwell.edge import model

        return getattr(model, name)
    if name == "EdgeError":
        from deepwell.edge.values import EdgeError

        return EdgeError
    raise AttributeError(f"module 'deepwell.edge' has no attribute {name!r}")
