"""Trust benchmark (issue 13): the bias audit, each mitigation and the explanations on Adult.

    python benchmarks/run_trust.py [--preset fast] [--repeats 3]

Trains deepwell on ../shared/datasets/adult.csv (income; sex and race are inputs, as a user would leave them) once
per mitigation — none, reweigh, threshold, reductions — on the same seeded split, and reads each run's
fairness.json: statistical parity difference, disparate impact ratio, equal opportunity and average odds
differences for sex=Female against sex=Male with their 95 % bootstrap intervals, fairlearn's two differences, and
accuracy, on the same test rows (threshold also under the equalised-odds constraint). Then times, on 1,000 test
rows, an audit by sex,race, an explanation (Integrated Gradients, no importance) and permutation importance, best of
--repeats and the median.

Writes benchmarks/results/trust.json and trust.md. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
ADULT = ROOT.parents[1] / "shared" / "datasets" / "adult.csv"
MITIGATIONS = (("none", "demographic_parity"), ("reweigh", "demographic_parity"), ("threshold", "demographic_parity"),
               ("threshold", "equalized_odds"), ("reductions", "demographic_parity"))  # (mitigation, constraint)
METRICS = ("statistical_parity_difference", "disparate_impact_ratio", "equal_opportunity_difference",
           "average_odds_difference", "demographic_parity_difference (fairlearn)",
           "equalized_odds_difference (fairlearn)")


def train(mitigation: str, constraint: str, preset: str, output: Path) -> dict:
    import deepwell as dw

    started = time.perf_counter()
    name = mitigation if mitigation in ("none", "reweigh") else f"{mitigation} ({constraint.replace('_', ' ')})"
    model = dw.train(ADULT, "income", output=output, name=f"{mitigation}-{constraint}", preset=preset, seed=0,
                     quiet=True, track=False,
                     config={"fairness": {"sensitive": ["sex"], "mitigate": mitigation, "constraint": constraint}})
    seconds = time.perf_counter() - started
    audit = json.loads((model.run_dir / "fairness.json").read_text())
    metrics = {(m["name"], m["group"]): m for m in audit["model"]["metrics"]}
    row = {"mitigation": name, "train_s": round(seconds, 1), "accuracy": audit["accuracy"],
           "test_rows": audit["rows"]}
    for name in METRICS:
        found = metrics.get((name, "Female")) or metrics.get((name, "all groups"))
        row[name] = found["value"]
        row[f"{name} interval"] = found["interval"]
        row[f"{name} flagged"] = found["flagged"]
    if audit.get("mitigation"):
        row["accuracy_unmitigated_same_run"] = audit["mitigation"]["accuracy_before"]
    return row


def timed(work, repeats: int) -> dict:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return {"best_s": round(min(seconds), 3), "median_s": round(statistics.median(seconds), 3)}


def timings(run_dir: Path, repeats: int) -> dict:
    import deepwell as dw
    from deepwell.explain.importance import permutation_importance

    model = dw.load(run_dir)
    rows = pd.read_csv(ADULT).sample(1000, random_state=0).reset_index(drop=True)
    return {"audit by sex,race (1,000 rows, 500 bootstrap resamples)":
            timed(lambda: model.audit(rows, ["sex", "race"]), repeats),
            "explain 1,000 rows (Integrated Gradients, 32 steps)":
            timed(lambda: model.explain(rows, importance=False), repeats),
            "permutation importance (1,000 rows, 14 columns × 10 repeats)":
            timed(lambda: permutation_importance(model, rows), repeats)}


def markdown(rows: list[dict], times: dict, preset: str) -> str:
    def cell(row: dict, name: str) -> str:
        low, high = row[f"{name} interval"] or (None, None)
        flag = " ⚑" if row[f"{name} flagged"] else ""
        return f"{row[name]:.3f}" + (f" [{low:.3f}, {high:.3f}]" if low is not None else "") + flag

    lines = [f"# Trust benchmark: Adult by sex (preset {preset})", "",
             "Test split of the same seeded 70/15/15 split in every run; Female against Male (the largest group). "
             "⚑ = flagged (SPD, EOD, AOD outside ±0.1; DIR outside 0.8–1.25; fairlearn's differences above 0.1). "
             "Intervals: 95 % bootstrap, 500 resamples.", "",
             "| mitigation | accuracy | SPD | DIR | EOD | AOD | DP diff (fairlearn) | EO diff (fairlearn) | train s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['mitigation']} | {row['accuracy']:.4f} | " + " | ".join(cell(row, m) for m in METRICS)
                     + f" | {row['train_s']} |")
    lines += ["", "| timing | best s | median s |", "|---|---:|---:|"]
    lines += [f"| {name} | {t['best_s']} | {t['median_s']} |" for name, t in times.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if not ADULT.is_file():
        sys.exit(f"{ADULT} is missing: the benchmark needs the shared Adult table.")
    with tempfile.TemporaryDirectory() as folder:
        rows = []
        for mitigation, constraint in MITIGATIONS:
            rows.append(train(mitigation, constraint, args.preset, Path(folder)))
            print(rows[-1], flush=True)
        times = timings(Path(folder) / "none-demographic_parity", args.repeats)
    print(times)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "trust.json").write_text(json.dumps({"preset": args.preset, "runs": rows, "timings": times},
                                                   indent=2) + "\n")
    (RESULTS / "trust.md").write_text(markdown(rows, times, args.preset))
    print(markdown(rows, times, args.preset))


if __name__ == "__main__":
    main()
