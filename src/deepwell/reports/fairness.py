"""The report's bias-audit section, from the run's fairness.json (`fairness.run.Audit.to_dict()`)."""

from __future__ import annotations

from typing import Any

from deepwell.reports.page import esc, table


def render_fairness(data: dict[str, Any]) -> str:
    audit, model = data["data"], data["model"]
    favourable = audit["favourable"]
    rate = "favourable rate" if favourable is not None else "mean target"
    parts = [f"<p>{data['rows']:,} test rows by <b>{esc(audit['attribute'])}</b>"
             + (f", favourable outcome <b>{esc(favourable)}</b>, privileged group <b>{esc(model['privileged'])}</b>"
                if favourable is not None else "") + ".</p>",
             table(["group", "rows", "share", rate, "missing"],
                   [(g["group"], g["rows"], f"{g['share']:.1%}",
                     f"{g['base_rate']:.1%}" if favourable is not None else g["base_rate"], f"{g['missing']:.1%}")
                    for g in audit["groups"]])]
    parts += [f'<p class="bad">{esc(w)}</p>' for w in audit["warnings"]]
    if favourable is None:
        parts.append(table(["group", "rows", "RMSE", "mean prediction", "mean target"],
                           [(g["group"], g["rows"], g["rmse"], g["mean_prediction"], g["mean_target"])
                            for g in model["groups"]]))
        return "".join(parts)
    parts.append(table(["group", "rows", "accuracy", "selection rate", "TPR", "FPR", "precision"],
                       [(g["group"], g["rows"], g["accuracy"], g["selection_rate"], g["true_positive_rate"],
                         g["false_positive_rate"], g["precision"]) for g in model["groups"]]))
    parts.append(table(["metric", "group", "value", "95% interval", "flag"],
                       [(m["name"], m["group"], m["value"],
                         "" if m["interval"] is None else f"{m['interval'][0]:.3f} – {m['interval'][1]:.3f}",
                         "flagged" if m["flagged"] else "ok") for m in model["metrics"]]))
    parts += [f'<p class="bad">{esc(m["sentence"])}</p>' for m in model["metrics"] if m["flagged"] and m["sentence"]]
    return "".join(parts)
