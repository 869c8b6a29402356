"""Run the suite: deepwell's defaults beside the best classical baseline on each dataset's fixed split (five
fixed splits for a table under 2,000 rows, averaged: see datasets.SMALL_TABLE_ROWS).

    python -m benchmarks.suite.run [--part tune|holdout|all] [--only NAME,…] [--seeds 42,1,2] [--work DIR]
                                   [--stem FILE_NAME]

Accuracy for classification, RMSE for regression, on the test split. The gap is deepwell minus the baseline
in accuracy points (positive: deepwell better), or the baseline's RMSE over deepwell's minus one in percent
(positive: deepwell better). Bars (issue 11): median gap ≥ 0; no dataset below −2 points or −5%.
Results are written after every dataset (a crash keeps what was measured). Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from benchmarks.suite.baselines import CLASSIFICATION, BaselineResult, best_baseline  # noqa: E402
from benchmarks.suite.datasets import SUITE, Dataset  # noqa: E402

BAR_POINTS, BAR_RELATIVE = -2.0, -5.0


def run_deepwell(dataset: Dataset, table: Path, classes: int, seed: int, output: Path,
                 settings: dict | None = None) -> dict:
    """One training with the defaults, or with `settings` (a nested config dict) on top of them."""
    import deepwell as dw

    task = "regression" if dataset.task != CLASSIFICATION else "binary" if classes == 2 else "multiclass"
    config = merge({"target": dataset.target, "task": task, "split": {"column": "split"}}, settings or {})
    started = time.perf_counter()
    model = dw.train(str(table), dataset.target, config=config, output=output, name=f"{dataset.name}-{seed}",
                     seed=seed, quiet=True, track=False)
    seconds = time.perf_counter() - started
    metric = "accuracy" if dataset.task == CLASSIFICATION else "rmse"
    training = model.metrics.training
    return {"seed": seed, "test": float(model.metrics.test.model[metric]), "seconds": round(seconds, 2),
            "epochs": training.epochs_run, "best_epoch": training.best_epoch, "stop": str(training.stop_reason),
            "verdict": str(model.diagnosis.verdict.value) if model.diagnosis else None}


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def gap(task: str, ours: float, baseline: float) -> float:
    """Positive when deepwell is better: accuracy points, or percent of RMSE."""
    if task == CLASSIFICATION:
        return 100 * (ours - baseline)
    return 100 * (baseline / ours - 1) if ours > 0 else 0.0


@dataclass
class SplitTable:
    """One fixed split of a dataset, written for deepwell, with the classical baselines fitted on it."""

    index: int
    frame: pd.DataFrame
    table: Path
    best: BaselineResult
    candidates: list[BaselineResult]


def split_tables(dataset: Dataset, work: Path) -> list[SplitTable]:
    """Each of the dataset's fixed splits (one, or several for a small table) as a file beside its baselines."""
    tables = []
    for index, frame in enumerate(dataset.frames(work)):
        table = work / dataset.name / f"data-{index}.parquet"
        table.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(table, index=False)
        best, candidates = best_baseline(frame, dataset.target, dataset.task, dataset.kind)
        tables.append(SplitTable(index, frame, table, best, candidates))
    return tables


def mean_baseline(tables: list[SplitTable]) -> dict:
    """The best-on-validation baseline averaged over the splits (its name, or each name chosen and how often)."""
    names = [t.best.name for t in tables]
    name = names[0] if len(set(names)) == 1 else "best per split (" + ", ".join(
        f"{n} ×{names.count(n)}" for n in dict.fromkeys(names)) + ")"
    return {"name": name, "test": statistics.mean(t.best.test for t in tables),
            "validation": statistics.mean(t.best.validation for t in tables),
            "seconds": statistics.mean(t.best.seconds for t in tables)}


def measure(dataset: Dataset, work: Path, seeds: list[int]) -> dict:
    started = time.perf_counter()
    tables = split_tables(dataset, work)
    build_seconds = time.perf_counter() - started
    frame = tables[0].frame
    classes = frame[dataset.target].nunique()
    runs = [{**run_deepwell(dataset, t.table, classes, seed, work / "runs"), "split": t.index}
            for t in tables for seed in seeds]
    ours = statistics.mean(r["test"] for r in runs)
    baseline = mean_baseline(tables)
    return {"name": dataset.name, "part": dataset.part, "kind": dataset.kind, "task": dataset.task,
            "about": dataset.about, "rows": len(frame), "split": frame["split"].value_counts().to_dict(),
            "splits": len(tables), "classes": int(classes) if dataset.task == CLASSIFICATION else None,
            "build_seconds": round(build_seconds, 1),
            "deepwell": runs, "deepwell_test": ours, "baseline": baseline,
            "baselines": [[c.__dict__ for c in t.candidates] for t in tables],
            "gap": gap(dataset.task, ours, baseline["test"])}


def summary(rows: list[dict]) -> dict:
    gaps = [r["gap"] for r in rows]
    failing = [r["name"] for r in rows
               if r["gap"] < (BAR_POINTS if r["task"] == CLASSIFICATION else BAR_RELATIVE)]
    return {"datasets": len(rows), "median_gap": statistics.median(gaps) if gaps else None,
            "worst": min(rows, key=lambda r: r["gap"])["name"] if rows else None, "below_bar": failing}


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"# Benchmark suite: deepwell defaults beside the best classical baseline ({meta['date']}, "
             f"{meta['cpus']} CPUs, seeds {meta['seeds']}"
             + (f"; resumed a run of {meta['resumed']}" if "resumed" in meta else "") + ")", "",
             "Test split of each dataset's fixed split — the mean over five fixed splits for a table under 2,000 rows "
             "(column 'splits'; its test set is a few dozen rows), the baseline chosen on validation per split. "
             "Accuracy (classification) or RMSE (regression). Gap: "
             "deepwell − baseline in accuracy points, or baseline RMSE / deepwell RMSE − 1 in %; positive = "
             "deepwell better. The baseline is the best on validation of the candidates for that kind of data. "
             "Bar: gap ≥ −2 points / −5%.", ""]
    for part in ("tune", "holdout"):
        chosen = [r for r in rows if r["part"] == part]
        if not chosen:
            continue
        facts = summary(chosen)
        lines += [f"## {part} part: median gap {facts['median_gap']:+.2f}; below the bar: "
                  f"{', '.join(facts['below_bar']) or 'none'}", "",
                  "| dataset | kind | rows | splits | deepwell | best baseline | gap | deepwell s | baseline s "
                  "| epochs "
                  "| bar |",
                  "|---|---|---:|---:|---:|---|---:|---:|---:|---|---|"]
        for r in chosen:
            metric = "acc" if r["task"] == CLASSIFICATION else "RMSE"
            spread = ", ".join(f"{d['test']:.4g}" for d in r["deepwell"])
            epochs = ", ".join(f"{d['epochs']} ({d['stop']})" for d in r["deepwell"])
            seconds = statistics.median(d["seconds"] for d in r["deepwell"])
            unit = "pt" if r["task"] == CLASSIFICATION else "%"
            bar = BAR_POINTS if r["task"] == CLASSIFICATION else BAR_RELATIVE
            lines.append(f"| {r['name']} ({r['about']}) | {r['kind']} | {r['rows']} | {r.get('splits', 1)} | "
                         f"{metric} {r['deepwell_test']:.4g}"
                         f" ({spread}) | {r['baseline']['name']} {r['baseline']['test']:.4g} | "
                         f"{r['gap']:+.2f} {unit} | {seconds:.1f} | {r['baseline']['seconds']:.1f} | {epochs} | "
                         f"{'✓' if r['gap'] >= bar else '✗'} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["tune", "holdout", "all"], default="all")
    parser.add_argument("--only", default="", help="comma-separated dataset names")
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--work", default=None, help="folder for generated files and runs (default: temporary)")
    parser.add_argument("--stem", default=None, help="results file name (default: suite, suite-<part>, suite-only)")
    parser.add_argument("--resume", action="store_true", help="keep the datasets the results file already has "
                        "(a run that stopped part-way) and measure only the others")
    args = parser.parse_args()
    only = {n for n in args.only.split(",") if n}
    chosen = [d for d in SUITE if (args.part == "all" or d.part == args.part) and (not only or d.name in only)]
    seeds = [int(s) for s in args.seeds.split(",")]
    stem = args.stem or ("suite" if args.part == "all" and not only else f"suite-{args.part if not only else 'only'}")
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "seeds": seeds}
    rows: list[dict] = []
    if args.resume and (RESULTS / f"{stem}.json").is_file():
        kept = json.loads((RESULTS / f"{stem}.json").read_text())
        names = {d.name for d in chosen}
        rows = [r for r in kept["datasets"] if r["name"] in names]
        meta["resumed"] = f"{kept['meta']['date']} ({len(rows)} datasets kept)"
    done = {r["name"] for r in rows}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        for dataset in (d for d in chosen if d.name not in done):
            rows.append(measure(dataset, work, seeds))
            r = rows[-1]
            print(f"{r['name']:18s} deepwell {r['deepwell_test']:.4f}  {r['baseline']['name']} "
                  f"{r['baseline']['test']:.4f}  gap {r['gap']:+.2f}", file=sys.stderr, flush=True)
            RESULTS.mkdir(exist_ok=True)
            parts = {p: summary([r for r in rows if r["part"] == p]) for p in ("tune", "holdout")
                     if any(r["part"] == p for r in rows)}
            (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "summary": parts, "datasets": rows},
                                                             indent=1, default=str) + "\n")
            (RESULTS / f"{stem}.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))


if __name__ == "__main__":
    main()
