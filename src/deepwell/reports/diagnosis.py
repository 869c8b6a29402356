"""The report's fit-diagnosis section, from diagnosis.json (and, when run, the data-size learning curve)."""

from __future__ import annotations

from typing import Any

from deepwell.reports.page import esc, table

COLOURS = {"good fit": "good", "underfit": "bad", "overfit": "bad", "not converged": "bad",
           "stopped too early": "bad"}


def render_diagnosis(data: dict[str, Any]) -> str:
    verdict = data.get("verdict", "?")
    out = (f'<p><strong class="{COLOURS.get(verdict, "")}">{esc(verdict)}</strong> — {esc(data.get("summary"))}'
           "</p>")
    evidence = data.get("evidence") or {}
    out += table(["evidence", "value"], [(k.replace("_", " "), v) for k, v in evidence.items()])
    prescriptions = data.get("prescriptions") or []
    if prescriptions:
        out += "<h3>What to change</h3>" + table(
            ["setting", "now", "try", "why"],
            [(p.get("setting") or "data", p.get("current"), p.get("to"), p.get("why")) for p in prescriptions])
    return out


def render_data_curve(data: dict[str, Any]) -> str:
    """`deepwell diagnose`: metric against training-set size, and its conclusion."""
    out = f'<p><strong>{esc(data.get("conclusion"))}</strong> — {esc(data.get("summary"))}</p>'
    points = data.get("points") or []
    if points:
        out += table(["training rows", "train error", "validation error"],
                     [(p["rows"], p["train_error"], p["validation_error"]) for p in points])
    return out
