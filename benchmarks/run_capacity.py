"""Capacity benchmark (issue 5): the default configuration against `--auto-capacity` and against
`tune --trials 20`, on Adult (../shared/datasets/adult.csv, 32,561 rows) and on a small noisy table
(scikit-learn's diabetes: 442 rows, a noisy regression target). Same seed, so the same split, for every
method; tuning scores trials on the validation split only, the test split is touched once per method.

Reports the test metric, the validation metric, the network size and wall time of each method (for tune and
auto-capacity: the whole search including the winner's retraining). Writes benchmarks/results/capacity.json
and capacity.md. Run: python benchmarks/run_capacity.py
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from sklearn.datasets import load_diabetes

import deepwell as dw

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
ADULT = ROOT.parents[1] / "shared" / "datasets" / "adult.csv"
TRIALS = 20


def datasets(work: Path) -> dict[str, tuple[Path, str]]:
    out = {}
    if ADULT.exists():
        out["adult"] = (ADULT, "income")
    diabetes = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    path = work / "diabetes.csv"
    diabetes.to_csv(path, index=False)
    out["diabetes"] = (path, "progression")
    return out


def row(dataset: str, method: str, model, seconds: float, **extra) -> dict:
    metric = model.metrics.primary_metric
    return {"dataset": dataset, "method": method, "metric": metric,
            "test": model.metrics.test.model[metric], "validation": model.metrics.validation.model[metric],
            "baseline_test": model.metrics.test.baseline[metric], "parameters": model.parameter_count,
            "diagnosis": model.diagnosis.verdict, "seconds": round(seconds, 1), **extra}


def main() -> None:
    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, (path, target) in datasets(work).items():
            start = time.perf_counter()
            model = dw.train(path, target, output=work / name, quiet=True, track=False)
            rows.append(row(name, "default configuration", model, time.perf_counter() - start))
            print(f"{name}: default done", file=sys.stderr)
            start = time.perf_counter()
            model = dw.auto_capacity(path, target, rounds=3, output=work / name, quiet=True, track=False)
            rows.append(row(name, "--auto-capacity (≤ 3 rounds)", model, time.perf_counter() - start,
                            rounds=" → ".join(r["verdict"] for r in model.rounds)))
            print(f"{name}: auto-capacity done", file=sys.stderr)
            start = time.perf_counter()
            result = dw.tune(path, target, trials=TRIALS, output=work / name, quiet=True, track=False)
            states = result.trials["state"].value_counts().to_dict()
            rows.append(row(name, f"tune --trials {TRIALS}", result.model, time.perf_counter() - start,
                            trials=", ".join(f"{v} {k}" for k, v in states.items())))
            print(f"{name}: tune done", file=sys.stderr)
    write_results(rows)


def write_results(rows: list[dict]) -> None:
    RESULTS.mkdir(exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "python": platform.python_version(),
            "torch": torch.__version__, "deepwell": dw.__version__, "cpu_threads": torch.get_num_threads()}
    (RESULTS / "capacity.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    lines = [f"# Capacity benchmark ({meta['date']}, {meta['cpu_threads']} CPU threads)", "",
             "Same split for every method (seed 42). Adult: accuracy (higher is better); diabetes: RMSE (lower is "
             "better). Wall time covers the whole method (every round or trial and the winner's retraining).", "",
             "| dataset | method | test | validation | trivial baseline (test) | parameters | diagnosis of the "
             "kept run | wall time (s) | notes |", "|---|---|---:|---:|---:|---:|---|---:|---|"]
    for r in rows:
        notes = r.get("rounds") or r.get("trials") or ""
        lines.append(f"| {r['dataset']} | {r['method']} | {r['test']:.4f} | {r['validation']:.4f} | "
                     f"{r['baseline_test']:.4f} | {r['parameters']:,} | {r['diagnosis']} | {r['seconds']} | {notes} |")
    (RESULTS / "capacity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
