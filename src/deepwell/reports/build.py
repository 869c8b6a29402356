"""report.html from the files of a run folder, so `deepwell report RUN_DIR` rebuilds it at any time.

Each section is a function of the run's files; a capability that adds a section (fit diagnosis, fairness,
explanations) writes its JSON into the run folder and registers one function in SECTIONS.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from deepwell.errors import ModelFileError
from deepwell.evaluation.results import RunMetrics, better
from deepwell.reports import plots
from deepwell.reports.diagnosis import render_data_curve, render_diagnosis
from deepwell.reports.explanations import render_explanations
from deepwell.reports.fairness import render_fairness
from deepwell.reports.page import esc, figure, page, table
from deepwell.runs.files import write_text
from deepwell.runs.layout import RunFolder

SAMPLE_ROWS = 12


@dataclass
class RunFiles:
    """The run folder's files, read on demand (absent files read as empty)."""

    run: RunFolder

    def _json(self, path: Path) -> dict[str, Any]:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    @cached_property
    def info(self) -> dict[str, Any]:
        return self._json(self.run.info)

    @cached_property
    def metrics(self) -> RunMetrics:
        return RunMetrics.from_dict(self._json(self.run.metrics))

    @cached_property
    def profile(self) -> dict[str, Any]:
        return self._json(self.run.profile)

    @cached_property
    def config(self) -> dict[str, Any]:
        return yaml.safe_load(self.run.config.read_text(encoding="utf-8")) if self.run.config.is_file() else {}

    @cached_property
    def history(self) -> pd.DataFrame:
        return pd.read_csv(self.run.history) if self.run.history.is_file() else pd.DataFrame()

    @cached_property
    def predictions(self) -> pd.DataFrame:
        return pd.read_csv(self.run.predictions, low_memory=False) if self.run.predictions.is_file() \
            else pd.DataFrame()

    def extra(self, name: str) -> dict[str, Any] | None:
        """A later capability's results (diagnosis.json, fairness.json, explanations.json), if present."""
        path = self.run.path / name
        return self._json(path) if path.is_file() else None


# --- sections ------------------------------------------------------------------------------------
def overview(files: RunFiles) -> str:
    info, metrics = files.info, files.metrics
    training, primary = metrics.training, metrics.primary_metric
    model = metrics.test.model.get(primary) if metrics.test else None
    baseline = metrics.test.baseline.get(primary) if metrics.test else None
    rows = [("status", info.get("status", "?")), ("data", (info.get("data") or {}).get("path") or "DataFrame"),
            ("task", metrics.task.value), ("target", metrics.target),
            ("rows (train / validation / test)", " / ".join(str(v) for v in (info.get("split") or {}).values())),
            ("parameters", training.parameters),
            ("epochs run (best)", f"{training.epochs_run} ({training.best_epoch})"),
            ("stopped by", training.stop_reason.value), ("training time (s)", training.seconds),
            ("device", training.device), ("deepwell", info.get("deepwell_version"))]
    if model is not None:
        verdict = "good" if _better(primary, model, baseline) else "bad"
        rows.insert(0, (f"test {primary}", f"{model:.4f} (trivial baseline {baseline:.4f})"))
        note = (f'<p class="{verdict}">The model {"beats" if verdict == "good" else "does not beat"} the trivial '
                "baseline on held-out data.</p>")
    else:
        note = '<p class="muted">No test split: see the validation metrics below.</p>'
    return table(["", ""], rows) + note


def data_profile(files: RunFiles) -> str | None:
    profile = files.profile
    if not profile:
        return None
    columns = profile.get("columns", [])
    out = table(["column", "type", "inferred", "dtype", "missing", "distinct", "examples"],
                [(c["name"], c["type"], c["inferred"], c["dtype"], c["missing"], c["distinct"],
                  ", ".join(c["examples"][:3])) for c in columns])
    balance = profile.get("class_balance")
    if balance:
        counts = pd.DataFrame(balance).fillna(0).astype(int)
        out += "<h3>Class balance</h3>" + table(["class", *counts.columns],
                                                [(i, *row) for i, row in zip(counts.index, counts.values.tolist(),
                                                                             strict=True)])
        out += f'<div class="figures">{figure(plots.class_balance(counts), "class balance per split")}</div>'
    return out


def configuration(files: RunFiles) -> str:
    model = files.config.get("model", {})
    out = f"<p>{files.metrics.training.parameters:,} trainable parameters; " + ", ".join(
        f"{esc(k)} {esc(v)}" for k, v in model.items()) + ".</p>"
    return out + f"<details><summary>config.yaml</summary><pre>{esc(yaml.safe_dump(files.config, sort_keys=False))}" \
                 "</pre></details>"


def learning_curves(files: RunFiles) -> str | None:
    history = files.history
    if history.empty:
        return None
    metric = files.metrics.primary_metric
    return f'<div class="figures">{figure(plots.learning_curves(history, metric), "learning curves")}</div>'


def evaluation(files: RunFiles) -> str:
    metrics = files.metrics
    rows = []
    for split in ("test", "validation"):
        result = getattr(metrics, split)
        if result is None:
            continue
        for name, value in result.model.items():
            if isinstance(value, (int, float)):
                rows.append((split, name, float(value), result.baseline.get(name)))
    out = table(["split", "metric", "model", "trivial baseline"], rows)
    predictions, target = files.predictions, metrics.target
    if predictions.empty or target not in predictions:
        return out + '<p class="muted">No test predictions to plot.</p>'
    figures = []
    if metrics.task.is_regression:
        figures.append(figure(plots.residuals(predictions[target].to_numpy(float),
                                              predictions["prediction"].to_numpy(float)), "residual plot"))
    else:
        classes = [c[len("probability_"):] for c in predictions.columns if c.startswith("probability_")]
        truth, predicted = predictions[target].astype(str), predictions["prediction"].astype(str)
        figures.append(figure(plots.confusion(truth, predicted, classes), "confusion matrix"))
        probabilities = predictions[[f"probability_{c}" for c in classes]]
        figures.append(figure(plots.roc_and_precision_recall(truth, probabilities, classes),
                              "ROC and precision-recall curves"))
    return out + f'<div class="figures">{"".join(figures)}</div>'


def sample_predictions(files: RunFiles) -> str | None:
    predictions = files.predictions
    if predictions.empty:
        return None
    sample = predictions.head(SAMPLE_ROWS)
    return table(list(sample.columns), sample.itertuples(index=False)) + \
        f'<p class="muted">First {len(sample)} of {len(predictions):,} test rows (predictions.csv).</p>'


def later(name: str, command: str) -> Callable[[RunFiles], str]:
    """A slot a later capability fills from its JSON file; until then it says how to produce it."""
    def render(files: RunFiles) -> str:
        data = files.extra(name)
        if data is None:
            return f'<p class="pending">Not computed for this run yet ({esc(command)}).</p>'
        renderer = SLOT_RENDERERS.get(name)
        return renderer(data) if renderer else f"<pre>{esc(json.dumps(data, indent=2))}</pre>"
    return render


SLOT_RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {RunFolder.DIAGNOSIS: render_diagnosis,
                                                               RunFolder.DATA_CURVE: render_data_curve,
                                                               RunFolder.FAIRNESS: render_fairness,
                                                               RunFolder.EXPLANATIONS: render_explanations}
"""name of a JSON file in the run folder → its HTML; filled by the capability that writes the file."""

SECTIONS: list[tuple[str, str, Callable[[RunFiles], str | None]]] = [
    ("overview", "Overview", overview),
    ("data", "Data profile", data_profile),
    ("configuration", "Configuration", configuration),
    ("learning-curves", "Learning curves", learning_curves),
    ("evaluation", "Evaluation against the trivial baseline", evaluation),
    ("predictions", "Sample predictions", sample_predictions),
    ("diagnosis", "Fit diagnosis", later(RunFolder.DIAGNOSIS, "written by every training run")),
    ("data-curve", "More data or a larger model?", later(RunFolder.DATA_CURVE, "deepwell diagnose RUN_DIR")),
    ("fairness", "Bias audit", later(RunFolder.FAIRNESS, "train with --sensitive COLUMN")),
    ("explanations", "Explanations", later(RunFolder.EXPLANATIONS, "written by every training run with captum "
                                                                    "installed; deepwell explain RUN_DIR DATA")),
]
"""A capability that adds a section (fairness, explanations …) appends it here with the command that fills it."""


def build_report(run_dir: str | Path) -> Path:
    """Write (or rewrite) report.html in a run folder and return its path."""
    run = RunFolder.existing(run_dir)
    if run.read_info().get("kind") == "generation":  # a fine-tuned causal LM (generation/train.py)
        from deepwell.reports.generation import generation_report

        write_text(run.report, generation_report(run))
        return run.report
    files = RunFiles(run)
    if not run.metrics.is_file():
        raise ModelFileError(f"{run.path} has no metrics.json: the run did not finish, so there is nothing to "
                             "report yet (resume it with --resume).")
    sections = []
    for anchor, title, render in SECTIONS:
        body = render(files)
        if body is not None:
            sections.append((anchor, title, body))
    subtitle = f"{files.metrics.task.value} model of {files.metrics.target} · {run.path.name}"
    write_text(run.report, page(f"deepwell run {run.path.name}", subtitle, sections))
    return run.report


def _better(metric: str, model: float, baseline: float | None) -> bool:
    return baseline is None or better(metric, model, baseline)
