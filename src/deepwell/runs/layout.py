"""The run folder: one place per training run, with a fixed layout every tool can rely on.

runs/<name>/
  config.yaml            the fully resolved configuration
  run.json               data file, its hash, split sizes, status (running / finished / interrupted)
  model/                 weights.safetensors, preprocessor.json, architecture.json, meta.json
  preprocessor.json      the fitted preprocessing, reused by --resume
  checkpoint.safetensors latest training state, for --resume (checkpoint.member-i.safetensors: ensemble member i)
  history.csv            one row per epoch
  metrics.json           test and validation metrics beside the baseline
  predictions.csv        the test split with predictions
  skipped_files.csv      image/audio files that could not be read (only when some were skipped)
  profile.json           the data profile: columns, inferred and used types, missing values, class balance
  diagnosis.json         the fit diagnosis: verdict, evidence, prescriptions
  fairness.json          the bias audit of the test split (only with fairness.sensitive)
  explanations.json      the test split explained: permutation importance, attributions of its first rows
  explanations/          the same as files: explanations.csv, importance.csv/.png, tokens.json, saliency/*.png
  learning_curves.png    loss and metric per epoch, training against validation
  report.html            the self-contained report page (deepwell report RUN_DIR rebuilds it)
  data_curve.json/.png   `deepwell diagnose RUN_DIR`: the data-size learning curve
  auto_capacity.json     `train --auto-capacity`: the rounds tried (in the kept run)
A fine-tuned causal LM's run (`deepwell finetune`, run.json kind: generation) has config.yaml, run.json,
history.csv, metrics.json (held-out scores before and after), samples.json, diagnosis.json, report.html, model/
(a generator folder: generation/model.py) and, with --merge, merged/ (a plain Hugging Face model folder).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from deepwell.errors import ModelFileError
from deepwell.runs.files import write_json


class RunStatus(str, Enum):
    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"  # Ctrl-C: the best model so far is saved; --resume continues
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RunFolder:
    """Every file name of a run folder is spelled here and nowhere else."""

    CONFIG = "config.yaml"
    INFO = "run.json"
    MODEL = "model"
    PREPROCESSOR = "preprocessor.json"
    CHECKPOINT = "checkpoint.safetensors"
    HISTORY = "history.csv"
    METRICS = "metrics.json"
    SKIPPED_FILES = "skipped_files.csv"
    PROFILE = "profile.json"
    DIAGNOSIS = "diagnosis.json"
    FAIRNESS = "fairness.json"
    EXPLANATIONS = "explanations.json"
    EXPLANATIONS_FOLDER = "explanations"
    LEARNING_CURVES = "learning_curves.png"
    REPORT = "report.html"
    PREDICTIONS = "predictions.csv"
    DATA_CURVE = "data_curve.json"
    DATA_CURVE_PLOT = "data_curve.png"
    AUTO_CAPACITY = "auto_capacity.json"
    SAMPLES = "samples.json"  # a fine-tuned causal LM: held-out answers before and after
    MERGED = "merged"  # a fine-tuned causal LM with merge: the adapter folded into a plain model folder

    path: Path

    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def info(self) -> Path:
        return self.path / self.INFO

    @property
    def model(self) -> Path:
        return self.path / self.MODEL

    @property
    def preprocessor(self) -> Path:
        return self.path / self.PREPROCESSOR

    @property
    def checkpoint(self) -> Path:
        return self.path / self.CHECKPOINT

    @staticmethod
    def member_checkpoint(checkpoint: Path, index: int) -> Path:
        """Ensemble member 0 uses the run's checkpoint file; member i its own beside it."""
        return checkpoint if index == 0 else checkpoint.with_name(f"{checkpoint.stem}.member-{index}"
                                                                  f"{checkpoint.suffix}")

    @property
    def history(self) -> Path:
        return self.path / self.HISTORY

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def skipped_files(self) -> Path:
        return self.path / self.SKIPPED_FILES

    @property
    def profile(self) -> Path:
        return self.path / self.PROFILE

    @property
    def diagnosis(self) -> Path:
        return self.path / self.DIAGNOSIS

    @property
    def fairness(self) -> Path:
        return self.path / self.FAIRNESS

    @property
    def explanations(self) -> Path:
        return self.path / self.EXPLANATIONS

    @property
    def explanations_folder(self) -> Path:
        return self.path / self.EXPLANATIONS_FOLDER

    @property
    def learning_curves(self) -> Path:
        return self.path / self.LEARNING_CURVES

    @property
    def report(self) -> Path:
        return self.path / self.REPORT

    @property
    def predictions(self) -> Path:
        return self.path / self.PREDICTIONS

    @property
    def data_curve(self) -> Path:
        return self.path / self.DATA_CURVE

    @property
    def data_curve_plot(self) -> Path:
        return self.path / self.DATA_CURVE_PLOT

    @property
    def auto_capacity(self) -> Path:
        return self.path / self.AUTO_CAPACITY

    @classmethod
    def create(cls, output: str | Path, name: str | None, data_name: str) -> RunFolder:
        """A new, empty folder; never reuses an existing one, so no earlier run is overwritten."""
        root = Path(output)
        base = name or f"{_slug(data_name)}-{time.strftime('%Y%m%d-%H%M%S')}"
        candidate, suffix = root / base, 1
        while candidate.exists():
            suffix += 1
            candidate = root / f"{base}-{suffix}"
        candidate.mkdir(parents=True)
        return cls(candidate)

    @classmethod
    def existing(cls, path: str | Path) -> RunFolder:
        run = cls(Path(path))
        for needed in (run.info, run.config):
            if not needed.is_file():
                raise ModelFileError(f"{run.path}: not a resumable run folder (missing {needed.name}).")
        return run

    def read_info(self) -> dict[str, Any]:
        try:
            return json.loads(self.info.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"{self.info}: damaged run description ({exc}).") from None

    def write_info(self, **updates: Any) -> None:
        info = self.read_info() if self.info.exists() else {}
        info.update(updates)
        write_json(self.info, info)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(text).stem).strip("-") or "run"
