"""The report's explanation section, from the run's explanations.json (`explain.run.Explanation.to_dict()`)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from deepwell.reports.page import esc, figure, table

SHOWN_ROWS = 5


def render_explanations(data: dict[str, Any]) -> str:
    if "skipped" in data:
        return f'<p class="pending">{esc(data["skipped"])}</p>'
    from deepwell.explain.pictures import importance_figure

    columns, rows = data["columns"], pd.DataFrame(data["rows"])
    parts = []
    if data.get("importance"):
        importance = pd.DataFrame(data["importance"])
        metric, score = importance["metric"].iloc[0], importance["baseline_score"].iloc[0]
        parts.append(f"<p>Permutation importance on the test split: how much the {esc(metric)} ({score:.4f} as "
                     f"given) worsens when one column's values are shuffled, {int(importance['repeats'].iloc[0])} "
                     "repeats, 95% intervals.</p>")
        parts.append(table(["column", "importance", "95% interval"],
                           [(r.column, r.importance, f"{r.low:.4f} – {r.high:.4f}") for r in importance.itertuples()]))
        parts.append(f'<div class="figures">{figure(importance_figure(importance, metric), "importance")}</div>')
    if not rows.empty:
        size = rows[columns].abs().mean().sort_values(ascending=False)
        parts.append(f"<h3>Integrated Gradients on {len(rows)} test rows</h3><p>Each column's attribution is its share "
                     f"of {esc(rows['explained'].iloc[0])} − the baseline's value; they add up to it. Mean size per "
                     "column, and what each column's baseline is:</p>")
        parts.append(table(["column", "mean |attribution|", "baseline"],
                           [(c, float(v), data["baselines"].get(c, "")) for c, v in size.items()]))
        parts.append(table(["row", "prediction", "output", "baseline", "top reasons"],
                           [(r["row"], r["prediction"], f"{r['explained']}={r['output']:.3g}",
                             f"{r['baseline_output']:.3g}", r["reasons"]) for r in data["rows"][:SHOWN_ROWS]]))
        parts.append(f'<p class="muted">All {len(rows)} rows in explanations/explanations.csv; per-token shares of '
                     "text in explanations/tokens.json, saliency maps in explanations/saliency/.</p>")
    return "".join(parts)
