"""Ablations on the suite: named variants of the defaults, side by side, over several seeds.

    python -m benchmarks.suite.ablate --only breast-cancer,mode --seeds 42,1,2 \\
        --variant "default:" --variant "one network:model.ensemble_size=1" [--stem ablation-ensemble]

Each variant is a name and comma-separated dotted settings (values read as YAML). The table gives the mean test
score per variant (and each seed's) beside the best classical baseline, so a default is chosen on numbers,
on the tune part, and checked on the holdout part. Results: benchmarks/results/<stem>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.suite.baselines import CLASSIFICATION  # noqa: E402
from benchmarks.suite.datasets import SUITE  # noqa: E402
from benchmarks.suite.run import RESULTS, gap, mean_baseline, run_deepwell, split_tables  # noqa: E402


def parse_variant(text: str) -> tuple[str, dict]:
    """'name:a.b=1,c=x' → ('name', {'a': {'b': 1}, 'c': 'x'})."""
    name, _, body = text.partition(":")
    settings: dict = {}
    for item in filter(None, (part.strip() for part in re.split(r",(?![^\[]*\])", body))):  # [a, b] stays whole
        path, _, value = item.partition("=")
        node = settings
        *parents, leaf = path.strip().split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = yaml.safe_load(value)
    return name.strip(), settings


def markdown(rows: list[dict], variants: list[str], meta: dict) -> str:
    lines = [f"# Ablation ({meta['date']}, {meta['cpus']} CPUs, seeds {meta['seeds']})", "",
             "Mean test accuracy (classification) or RMSE (regression) over the seeds (and the five fixed splits of a "
             "table under 2,000 rows); gap to the best classical "
             "baseline in points or % (positive: deepwell better); median seconds per training.", "",
             "| dataset | part | baseline | " + " | ".join(variants) + " |",
             "|---|---|---:|" + "---:|" * len(variants)]
    for r in rows:
        unit = "pt" if r["task"] == CLASSIFICATION else "%"
        cells = [f"{v['mean']:.4g} ({v['gap']:+.2f} {unit}, {v['seconds']:.0f} s)" for v in r["variants"].values()]
        lines.append(f"| {r['name']} | {r['part']} | {r['baseline']:.4g} | " + " | ".join(cells) + " |")
    for part in ("tune", "holdout"):
        chosen = [r for r in rows if r["part"] == part]
        if chosen:
            medians = [statistics.median(r["variants"][v]["gap"] for r in chosen) for v in variants]
            lines.append(f"| **median gap, {part}** | | | " + " | ".join(f"{m:+.2f}" for m in medians) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", required=True, help="comma-separated dataset names")
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--variant", action="append", required=True, help="NAME:key=value,key=value")
    parser.add_argument("--stem", default="ablation")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    datasets = [d for d in SUITE if d.name in names]
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = dict(parse_variant(v) for v in args.variant)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "seeds": seeds,
            "variants": variants}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for dataset in datasets:
            tables = split_tables(dataset, work)
            best = mean_baseline(tables)
            classes = tables[0].frame[dataset.target].nunique()
            row = {"name": dataset.name, "part": dataset.part, "task": dataset.task, "baseline": best["test"],
                   "baseline_name": best["name"], "splits": len(tables), "variants": {}}
            for name, settings in variants.items():
                runs = [{**run_deepwell(dataset, t.table, classes, seed, work / "runs", settings), "split": t.index}
                        for t in tables for seed in seeds]
                mean = statistics.mean(r["test"] for r in runs)
                row["variants"][name] = {"mean": mean, "gap": gap(dataset.task, mean, best["test"]), "runs": runs,
                                         "seconds": statistics.median(r["seconds"] for r in runs)}
                print(f"{dataset.name:18s} {name:24s} {mean:.4f} (baseline {best['test']:.4f})", file=sys.stderr,
                      flush=True)
            rows.append(row)
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / f"{args.stem}.json").write_text(json.dumps({"meta": meta, "datasets": rows}, indent=1,
                                                                  default=str) + "\n")
            (RESULTS / f"{args.stem}.md").write_text(markdown(rows, list(variants), meta))
    print(markdown(rows, list(variants), meta))


if __name__ == "__main__":
    main()
