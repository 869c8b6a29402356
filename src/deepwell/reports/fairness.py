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
    if data.get("mitigation"):
        parts.append(render_mitigation(data["mitigation"]))
    return "".join(parts)


def render_mitigation(mitigation: dict[str, Any]) -> str:
    """Every metric of the unmitigated and the mitigated model on the same test rows, and the accuracy it cost."""
    def interval(pair: list[float] | None) -> str:
        return "" if pair is None else f" ({pair[0]:.3f} – {pair[1]:.3f})"

    def shown(value: float | None, pair: list[float] | None, flagged: bool | None) -> str:
        return "—" if value is None else f"{value:.3f}{interval(pair)}{' flagged' if flagged else ''}"

    rows = [(m["metric"], m["group"], shown(m["before"], m["before_interval"], m["before_flagged"]),
             shown(m["after"], m["after_interval"], m["after_flagged"])) for m in mitigation["metrics"]]
    rows.append(("accuracy", "all", f"{mitigation['accuracy_before']:.4f}", f"{mitigation['accuracy_after']:.4f}"))
    cost = mitigation["accuracy_cost"]
    words = (f"cost {cost:.2%} of accuracy" if cost > 0 else f"changed accuracy by {-cost:+.2%}")
    return (f"<h3>Mitigation: {esc(mitigation['method'])}</h3><p>Before: the model trained without it, on the same "
            f"test rows. The mitigation {words}.</p>" + table(["metric", "group", "before", "after"], rows))
