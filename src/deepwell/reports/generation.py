"""The report of a fine-tuned causal LM's run (run.json kind: generation): what was tuned, the loss curve, the
held-out scores before and after, sample answers, the fit diagnosis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from deepwell.reports import plots
from deepwell.reports.diagnosis import render_diagnosis
from deepwell.reports.page import esc, figure, page, table
from deepwell.runs.layout import RunFolder

SCORES = (("loss", "held-out loss (completion tokens)"), ("perplexity", "perplexity"),
          ("exact_match", "exact match (greedy)"), ("token_f1", "token F1 (greedy)"))


def generation_report(run: RunFolder) -> str:
    info, metrics = _json(run.info), _json(run.metrics)
    sections = [("overview", "Overview", _overview(info, metrics)),
                ("configuration", "Configuration", _configuration(run)),
                ("learning-curves", "Learning curves", _curves(run)),
                ("evaluation", "Held-out evaluation before and after fine-tuning", _scores(metrics)),
                ("samples", "Sample generations", _samples(run.path / RunFolder.SAMPLES))]
    if run.diagnosis.is_file():
        sections.append(("diagnosis", "Fit diagnosis", render_diagnosis(_json(run.diagnosis))))
    subtitle = f"{metrics.get('method')} fine-tuning of {Path(info.get('base', '')).name} · {run.path.name}"
    return page(f"deepwell run {run.path.name}", subtitle, [s for s in sections if s[2] is not None])


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _overview(info: dict[str, Any], metrics: dict[str, Any]) -> str:
    rows = [("base model", info.get("base")), ("data", f"{info.get('data')} ({info.get('source')})"),
            ("examples", f"{metrics.get('train_examples')} train, {metrics.get('held_out_examples')} held out"),
            ("method", metrics.get("method")),
            ("parameters that learn",
             f"{metrics.get('trainable_parameters', 0):,} of {metrics.get('parameters', 0):,}"),
            ("best epoch", f"{metrics.get('best_epoch')} of {metrics.get('epochs_run')} run"),
            ("status", info.get("status"))]
    return table(["", ""], rows)


def _configuration(run: RunFolder) -> str:
    config = yaml.safe_load(run.config.read_text(encoding="utf-8")) if run.config.is_file() else {}
    return f"<details><summary>config.yaml</summary><pre>{esc(yaml.safe_dump(config, sort_keys=False))}</pre></details>"


def _curves(run: RunFolder) -> str | None:
    if not run.history.is_file():
        return None
    history = pd.read_csv(run.history)
    fig = plots.learning_curves(history, "perplexity")
    return f'<div class="figures">{figure(fig, "loss and perplexity per epoch (epoch 0: the base model)")}</div>'


def _scores(metrics: dict[str, Any]) -> str:
    before, after = metrics.get("before") or {}, metrics.get("after") or {}
    rows = [(label, before.get(key), after.get(key)) for key, label in SCORES]
    return table(["", "before (base)", "after"], rows) + \
        f'<p class="muted">Greedy answers to {after.get("answered", 0)} held-out prompts.</p>'


def _samples(path: Path) -> str | None:
    samples = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    if not samples:
        return None
    return table(["prompt", "reference", "before", "after"],
                 [(s["prompt"], s["reference"], s["answer_before"], s["answer"]) for s in samples])
