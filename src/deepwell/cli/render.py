"""Rich renderings shared by the commands: evaluation beside the baseline, column profiles, model info."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from deepwell.data.inference import ColumnProfile
from deepwell.evaluation.diagnosis import Diagnosis, Verdict
from deepwell.evaluation.results import SplitScores, TrainingFacts, better
from deepwell.explain.run import Explanation
from deepwell.fairness.run import Audit
from deepwell.monitoring.drift import DriftReport
from deepwell.task import Task

SUMMARY = {"classification": ["accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss"],
           "regression": ["rmse", "mae", "r2"]}


def training_line(info: TrainingFacts) -> str:
    """'N parameters, best epoch B of E (reason), S s on DEVICE' — for an ensemble, each member's epochs."""
    if not info.members:
        return (f"{info.parameters:,} parameters, best epoch {info.best_epoch} of {info.epochs_run} "
                f"({info.stop_reason}), {info.seconds:.1f}s on {info.device}")
    epochs = ", ".join(f"{m['best_epoch']}/{m['epochs_run']}" for m in info.members)
    return (f"an ensemble of {len(info.members)} networks averaged, {info.parameters:,} parameters, best/run epochs "
            f"{epochs}, {info.seconds:.1f}s on {info.device}")


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    text = f"{value:.4f}"
    return "0.0000" if text == "-0.0000" else text  # a baseline R² of -1e-17 is zero, not negative


def evaluation_table(result: SplitScores, task: Task, title: str) -> Table:
    table = Table(title=f"{title} ({result.rows} rows)", title_justify="left")
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("", justify="left")
    for name in SUMMARY[task.family]:
        model, base = result.model.get(name), result.baseline.get(name)
        verdict = ""
        if model is not None and base is not None:
            verdict = "[green]better[/]" if better(name, model, base) else "[red]not better[/]"
        table.add_row(name, _fmt(model), _fmt(base), verdict)
    return table


def class_tables(result: SplitScores) -> list[Table]:
    model = result.model
    if "per_class" not in model:
        return []
    classes = list(model["per_class"])
    matrix = Table(title="confusion matrix", caption="rows: true · columns: predicted", title_justify="left",
                   caption_justify="left")
    matrix.add_column("")
    for c in classes:
        matrix.add_column(c, justify="right")
    for c, row in zip(classes, model["confusion_matrix"], strict=True):
        matrix.add_row(c, *map(str, row))
    per_class = Table(title="per class", title_justify="left")
    for col in ("class", "precision", "recall", "f1", "support"):
        per_class.add_column(col, justify="left" if col == "class" else "right")
    for c, s in model["per_class"].items():
        per_class.add_row(c, _fmt(s["precision"]), _fmt(s["recall"]), _fmt(s["f1"]), str(s["support"]))
    return [matrix, per_class]


def print_evaluation(console: Console, result: SplitScores, task: Task, title: str) -> None:
    console.print(evaluation_table(result, task, title))
    for table in class_tables(result):
        console.print(table)


def profile_table(profiles: list[ColumnProfile], source: str) -> Table:
    table = Table(title=f"{source}", title_justify="left")
    for col in ("column", "type", "dtype", "missing", "distinct", "examples", "note"):
        table.add_column(col, overflow="fold")
    for p in profiles:
        kind = f"[bold]{p.type}[/]" if p.type not in ("id", "empty") else f"[dim]{p.type}[/]"
        table.add_row(p.name, kind, p.dtype, str(p.missing), str(p.distinct), ", ".join(p.examples), p.note)
    return table


def frame_table(frame: pd.DataFrame, title: str) -> Table:
    """Any small DataFrame as a rich table (floats to 4 significant digits, missing as blank)."""
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        widest = max((len(str(v)) for v in frame[column]), default=0)
        # identifiers are copied into other commands: never cut or wrapped, whatever the terminal's width
        keep_whole = not numeric and widest <= 40 and " " not in "".join(map(str, frame[column]))
        table.add_column(str(column), justify="right" if numeric else "left", no_wrap=keep_whole,
                         min_width=widest if keep_whole else None, overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*("" if v is None or (isinstance(v, float) and pd.isna(v)) else
                        f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    return table


def print_diagnosis(console: Console, diagnosis: Diagnosis | None) -> None:
    """The fit verdict, its one-paragraph evidence, and what to change."""
    if diagnosis is None:
        return
    colour = "green" if diagnosis.verdict == Verdict.GOOD_FIT else "yellow"
    console.print(f"fit diagnosis: [bold {colour}]{diagnosis.verdict}[/] — {diagnosis.summary}", highlight=False)
    for p in diagnosis.prescriptions:
        change = f"{p.setting}: {p.current} → {p.to}" if p.setting else "data"
        console.print(f"  • {change} ({p.why})", highlight=False)


STATUS_STYLE = {"stable": "green", "shifted": "yellow", "drifted": "bold red", "absent": "bold red",
                "too few rows": "dim"}


def drift_table(report: DriftReport) -> Table:
    table = Table(title=f"Drift of {report.rows:,} rows from {report.source} against training",
                  title_justify="left")
    for column in ("measure", "status", "PSI", "test", "p", "missing"):
        table.add_column(column, justify="right" if column in ("PSI", "p") else "left")
    for m in report.measures:
        missing = "" if m.missing is None else f"{m.missing[0]:.1%} → {m.missing[1]:.1%}"
        table.add_row(m.measure, f"[{STATUS_STYLE[m.status.value]}]{m.status.value}[/]",
                      "" if m.psi is None else f"{m.psi:.3f}", m.test or "",
                      "" if m.p_value is None else f"{m.p_value:.2g}", missing)
    return table


def print_audit(console: Console, audit: Audit) -> None:
    data, model = audit.data, audit.model
    outcome = f", favourable outcome {data.favourable!r}" if data.favourable is not None else ""
    table = Table(title=f"Data: {audit.rows:,} rows of {audit.source} by {data.attribute}{outcome}",
                  title_justify="left")
    for column in ("group", "rows", "share", "favourable rate" if data.favourable else "mean target", "missing"):
        table.add_column(column, justify="left" if column == "group" else "right")
    for g in data.groups:
        table.add_row(g.group, f"{g.rows:,}", f"{g.share:.1%}",
                      f"{g.base_rate:.1%}" if data.favourable else f"{g.base_rate:.4g}", f"{g.missing:.1%}")
    console.print(table)
    for warning in data.warnings:
        console.print(f"[yellow]![/] {warning}")
    if model.favourable is None:
        console.print(frame_table(pd.DataFrame([{"group": g.group, "rows": g.rows, "rmse": g.rmse,
                                                 "mean prediction": g.mean_prediction,
                                                 "mean target": g.mean_target} for g in model.groups]),
                                  f"Model by {model.attribute}"))
        return
    console.print(frame_table(pd.DataFrame([{"group": g.group, "rows": g.rows, "accuracy": g.accuracy,
                                             "selection rate": g.selection_rate, "TPR": g.true_positive_rate,
                                             "FPR": g.false_positive_rate, "precision": g.precision}
                                            for g in model.groups]),
                              f"Model by {model.attribute} (privileged: {model.privileged})"))
    metrics = Table(title="Fairness metrics (95% bootstrap interval)", title_justify="left")
    for column in ("metric", "group", "value", "interval", "flag"):
        metrics.add_column(column, justify="right" if column in ("value", "interval") else "left")
    for m in model.metrics:
        interval = "" if m.interval is None else f"{m.interval[0]:.3f} – {m.interval[1]:.3f}"
        metrics.add_row(m.name, m.group, f"{m.value:.3f}", interval, "[bold red]flagged[/]" if m.flagged else "ok")
    console.print(metrics)
    for m in model.flagged:
        if m.sentence:
            console.print(f"[red]![/] {m.sentence}")


def print_mitigation(console: Console, mitigation: dict[str, Any]) -> None:
    """A mitigated run's fairness metrics and accuracy before and after, on the test split."""
    table = Table(title=f"mitigation: {mitigation['method']} (test split, before → after)")
    for name in ("metric", "group", "before", "after"):
        table.add_column(name, justify="right" if name in ("before", "after") else "left")

    def shown(value: float | None, flagged: bool | None) -> str:
        text = "—" if value is None else f"{value:.3f}"
        return f"[red]{text}[/]" if flagged else text

    for row in mitigation["metrics"]:
        table.add_row(row["metric"], row["group"], shown(row["before"], row["before_flagged"]),
                      shown(row["after"], row["after_flagged"]))
    table.add_row("accuracy", "all", shown(mitigation["accuracy_before"], False),
                  shown(mitigation["accuracy_after"], False))
    console.print(table)


def print_explanation(console: Console, explanation: Explanation, shown: int = 10) -> None:
    """The top reasons of the first rows, and the importance table."""
    a = explanation.attributions
    table = Table(title=f"why (Integrated Gradients; first {min(shown, len(explanation.rows))} of "
                        f"{len(explanation.rows)} rows)")
    for name in ("row", "prediction", "output", "baseline", "top reasons"):
        table.add_column(name, justify="right" if name in ("row", "output", "baseline") else "left")
    for i in range(min(shown, len(explanation.rows))):
        table.add_row(str(explanation.rows[i]), str(explanation.predictions[i]), f"{a.explained[i]}={a.output[i]:.3g}",
                      f"{a.baseline_output[i]:.3g}", "\n".join(explanation.reasons[i]))
    console.print(table)
    if explanation.importance is not None:
        found = explanation.importance
        console.print(frame_table(found.table.drop(columns=["repeats"]).round(4),
                                  f"permutation importance ({found.metric} {found.score:.4f} as given; "
                                  f"{int(found.table['repeats'].iloc[0])} repeats)"))


def print_finetune(console: Console, run_dir, metrics: dict) -> None:
    """Held-out scores of a fine-tuned causal LM before and after, and where its run folder is."""
    table = Table(title=f"{metrics['method']} fine-tuning: held-out evaluation", title_justify="left")
    for column in ("", "before (base)", "after"):
        table.add_column(column, justify="right" if column else "left")
    for key, label in (("loss", "loss"), ("perplexity", "perplexity"), ("exact_match", "exact match"),
                       ("token_f1", "token F1")):
        before, after = metrics["before"].get(key), metrics["after"].get(key)
        table.add_row(label, "–" if before is None else f"{before:.4f}", "–" if after is None else f"{after:.4f}")
    console.print(table)
    console.print(f"{metrics['trainable_parameters']:,} of {metrics['parameters']:,} parameters learned; "
                  f"best epoch {metrics['best_epoch']} of {metrics['epochs_run']}. Run folder: {run_dir}")


def print_export(console: Console, report: Any) -> None:
    """What `deepwell export` wrote and checked: sizes, the edge runtime against the full model, int8's agreement."""
    console.print(f"[bold]exported[/bold] {report.folder} ({report.size_bytes / 1e6:.2f} MB; model.onnx "
                  f"{report.graph_bytes / 1e6:.2f} MB)")
    console.print(f"  checked on {report.rows_checked} held-out rows from {report.source}: the edge runtime's "
                  f"outputs are within {report.max_difference:.2g} of the full model's")
    if report.quantization:
        console.print(f"  int8 ({report.quantization}): model.onnx {report.fp32_graph_bytes / 1e6:.2f} MB → "
                      f"{report.graph_bytes / 1e6:.2f} MB, {report.agreement:.2%} of predictions as fp32's, "
                      f"outputs within {report.int8_max_difference:.2g}")
    if report.accuracy:
        metric = "accuracy" if all(v <= 1 for v in report.accuracy.values()) else "RMSE"
        console.print("  " + metric + " on those rows: " +
                      ", ".join(f"{name} {value:.4f}" for name, value in report.accuracy.items()))
