"""`deepwell.load`: a model folder, a run folder, or a registered model URI → Model. Never executes code."""

from __future__ import annotations

from pathlib import Path

from deepwell.model import Model

URI_SCHEMES = ("models:/", "runs:/")


def load(path: str | Path) -> Model:
    """Load a model folder, a run folder, or a registered model (`models:/NAME@production`, `models:/NAME/3`,
    `runs:/RUN_ID/model`)."""
    if str(path).startswith(URI_SCHEMES):
        from deepwell.tracking.registry import download_model

        return Model.load(download_model(str(path)))
    return Model.load(path)
