"""`deepwell monitor`'s output: drift.json, and drift.html with a table of every measure and, for each flagged
one, its bins in training beside the new rows (the report's page shell: inline PNGs, no CDN, no script)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from deepwell.monitoring.drift import DriftReport, MeasureDrift
from deepwell.reports.page import esc, figure, page, table
from deepwell.runs.files import write_json, write_text

REFERENCE, CURRENT = "#3b6fb6", "#d9822b"
JSON_NAME, HTML_NAME = "drift.json", "drift.html"


def write_drift_report(report: DriftReport, out: Path, model: str) -> Path:
    """drift.json and drift.html in `out`; returns the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / JSON_NAME, report.to_dict())
    rows = [(m.measure, m.what, m.status.value, m.psi, m.test or "", m.statistic, m.p_value,
             _missing(m)) for m in report.measures]
    summary = (f"<p>{report.rows:,} new rows from {esc(report.source)}; {len(report.flagged)} of "
               f"{len(report.measures)} measures flagged. PSI ≥ 0.10 with p &lt; 0.05 is <b>shifted</b>, "
               "PSI ≥ 0.25 with p &lt; 0.01 <b>drifted</b>.</p>")
    sections = [("measures", "Every measure",
                 summary + table(["measure", "what", "status", "PSI", "test", "statistic", "p", "missing"], rows))]
    flagged = [m for m in report.flagged if m.bins]
    if flagged:
        sections.append(("flagged", "Flagged measures: training against the new rows",
                         '<div class="figures">' + "".join(figure(_bars(m), m.measure) for m in flagged)
                         + "</div>"))
    path = out / HTML_NAME
    write_text(path, page(f"Drift: {model}", f"{report.rows:,} rows from {report.source}", sections))
    return path


def _missing(m: MeasureDrift) -> str:
    return "" if m.missing is None else f"{m.missing[0]:.1%} → {m.missing[1]:.1%}"


def _bars(m: MeasureDrift) -> Figure:
    positions = np.arange(len(m.bins))
    fig = Figure(figsize=(max(4.5, 0.55 * len(m.bins) + 2), 3.4))
    ax = fig.subplots()
    ax.bar(positions - 0.2, m.reference_shares, width=0.4, color=REFERENCE, label="training")
    ax.bar(positions + 0.2, m.current_shares, width=0.4, color=CURRENT, label="new rows")
    ax.set_xticks(positions, m.bins, rotation=40 if len(m.bins) > 4 else 0, ha="right", fontsize=8)
    ax.set_ylabel("share of rows")
    ax.set_title(f"{m.measure}: {m.status.value} (PSI {m.psi:.2f})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
