"""`deepwell.load`: a model folder, a run folder, or a registered model URI → Model. Never executes code."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from deepwell.model import Model

if TYPE_CHECKING:
    from deepwell.generation.model import Generator

URI_SCHEMES = ("models:/", "runs:/")


def load(path: str | Path, device: str = "cpu") -> Model | Generator:
    """Load a model folder, a run folder, or a registered model (`models:/NAME@production`, `models:/NAME/3`,
    `runs:/RUN_ID/model`). A fine-tuned causal LM's folder (`dw.finetune`) gives a `Generator`."""
    if str(path).startswith(URI_SCHEMES):
        from deepwell.tracking.registry import download_model

        return Model.load(download_model(str(path)))
    from deepwell.generation.model import is_generator

    if is_generator(path):
        from deepwell.generation.model import load_generator

        return load_generator(path, device)
    return Model.load(path)
