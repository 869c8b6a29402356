"""Platform benchmark (issue 9): how light `import deepwell` is, how fast the CLI answers, and whether a
refactor changed results (Adult, seed 42: every metric must stay bit-identical).

    python benchmarks/run_platform.py [--label before|after]

Writes benchmarks/results/platform.json (one entry per label) and platform.md. Run it alone on the machine:
timings of two busy processes slow each other many times over.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
ADULT = ROOT.parents[1] / "shared" / "datasets" / "adult.csv"
REPEATS = 5
HEAVY = ("torch", "sklearn", "matplotlib", "mlflow", "transformers", "scipy", "pandas")


def import_time() -> dict:
    """Total self+cumulative time of `import deepwell` from -X importtime (best and median of REPEATS)."""
    totals = []
    for _ in range(REPEATS):
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import deepwell"], capture_output=True,
                             text=True, check=True).stderr
        line = [row for row in out.splitlines() if re.search(r"\|\s+deepwell$", row)][-1]
        totals.append(int(line.split("|")[1]) / 1e6)
    loaded = subprocess.run([sys.executable, "-c", "import sys, deepwell; print(' '.join(sorted(sys.modules)))"],
                            capture_output=True, text=True, check=True).stdout.split()
    return {"best_s": round(min(totals), 3), "median_s": round(statistics.median(totals), 3),
            "heavy_modules_loaded": [m for m in HEAVY if m in loaded]}


def wall(command: list[str]) -> dict:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return {"best_s": round(min(times), 3), "median_s": round(statistics.median(times), 3)}


def adult_metrics() -> dict:
    """Adult with default settings and seed 42: the numbers a refactor must not change (timings left out)."""
    import warnings

    import deepwell as dw

    with tempfile.TemporaryDirectory() as work, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = dw.train(str(ADULT), target="income", seed=42, output=work, quiet=True, track=False)
        metrics = json.loads((Path(model.run_dir) / "metrics.json").read_text())
        history = (Path(model.run_dir) / "history.csv").read_text().splitlines()
    metrics["training"].pop("seconds", None)  # the reference learner (scikit-learn's) is left out: not ours
    return {"test": metrics["test"]["model"], "validation": metrics["validation"]["model"],
            "train": metrics["train"]["model"],
            "training": metrics["training"], "history_val_loss": [row.split(",")[history[0].split(",").index(
                "val_loss")] for row in history[1:]]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--label", default="after")
    label = parser.parse_args().label
    deepwell_cli = str(Path(sys.executable).with_name("deepwell"))
    with tempfile.TemporaryDirectory() as work:
        small = Path(work) / "small.csv"
        small.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(50)))
        result = {"import_deepwell": import_time(), "deepwell_help": wall([deepwell_cli, "--help"]),
                  "deepwell_describe_small_csv": wall([deepwell_cli, "describe", str(small)]),
                  "adult_seed42": adult_metrics() if ADULT.exists() else None}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "platform.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    stored[label] = result
    if "before" in stored and "after" in stored and stored["before"]["adult_seed42"]:
        before, after = stored["before"]["adult_seed42"], stored["after"]["adult_seed42"]
        same = {k: before[k] == after[k] for k in after}
        stored["adult_identical"] = same
    path.write_text(json.dumps(stored, indent=1))
    lines = ["| | " + " | ".join(stored_label for stored_label in stored if stored_label != "adult_identical") + " |",
             "|---|" + "---|" * sum(1 for k in stored if k != "adult_identical")]
    labels = [k for k in stored if k != "adult_identical"]
    for key, name in [("import_deepwell", "`import deepwell` (importtime, best / median)"),
                      ("deepwell_help", "`deepwell --help` wall (best / median)"),
                      ("deepwell_describe_small_csv", "`deepwell describe` 50-row CSV wall (best / median)")]:
        lines.append(f"| {name} | " + " | ".join(f"{stored[k][key]['best_s']} s / {stored[k][key]['median_s']} s"
                                                 for k in labels) + " |")
    lines.append("| heavy modules after `import deepwell` | " + " | ".join(
        ", ".join(stored[k]["import_deepwell"]["heavy_modules_loaded"]) or "none" for k in labels) + " |")
    for split in ("test", "validation"):
        lines.append(f"| Adult seed 42 {split} accuracy / log loss | " + " | ".join(
            f"{stored[k]['adult_seed42'][split]['accuracy']!r} / {stored[k]['adult_seed42'][split]['log_loss']!r}"
            for k in labels if stored[k]["adult_seed42"]) + " |")
    if "adult_identical" in stored:
        lines.append(f"\nAdult seed 42, before vs after, identical: {stored['adult_identical']}")
    (RESULTS / "platform.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
