"""Unstructured-data benchmark (issue 3), each beside a classical baseline trained in the same run.

- digits as PNG class folders (scikit-learn's 1,797 real 8×8 scans): deepwell's CNN vs an SVM on pixels,
  on the same seeded, stratified split. Bar: ≥ 98% test accuracy.

Reports test accuracy, wall time and peak memory (resident set size, from the OS) for each.
Writes benchmarks/results/media.json and media.md. Run: python benchmarks/run_media.py
"""

from __future__ import annotations

import json
import platform
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from sklearn.svm import SVC

import deepwell as dw
from deepwell.config import SplitConfig
from deepwell.data.folders import folder_table
from deepwell.data.split import split_table
from deepwell.sample_data import write_digits

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 42


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def digits_benchmark(work: Path) -> list[dict]:
    root = write_digits(work / "digits")
    config = {"target": "label", "columns": {"image": {"type": "image", "image": {
        "size": 32, "flip": False, "width": 16}}}}
    start, rss_before = time.perf_counter(), peak_rss_mb()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = dw.train(root, config=config, output=work / "runs", name="digits", quiet=True, seed=SEED)
    seconds = time.perf_counter() - start
    rows = [{"task": "digits (PNG folders)", "model": "deepwell CNN (size 32, width 16, no flip)",
             "test_accuracy": model.metrics["test"]["model"]["accuracy"], "seconds": seconds,
             "epochs": model.metrics["training"]["epochs_run"], "peak_rss_mb": max(peak_rss_mb(), rss_before)}]
    table, _ = folder_table(root)
    splits = split_table(table, SplitConfig(), seed=SEED, stratify_by="label", target="label")
    assert len(splits.test) == model.metrics["test"]["rows"]

    def pixels(paths: pd.Series) -> np.ndarray:
        return np.stack([np.asarray(Image.open(p), dtype=np.float32).ravel() / 255 for p in paths])

    start = time.perf_counter()
    fit = pd.concat([splits.train, splits.validation])
    svm = SVC(gamma="scale").fit(pixels(fit["image"]), fit["label"])
    accuracy = float((svm.predict(pixels(splits.test["image"])) == splits.test["label"]).mean())
    rows.append({"task": "digits (PNG folders)", "model": "SVM (RBF) on pixels", "test_accuracy": accuracy,
                 "seconds": time.perf_counter() - start, "epochs": None, "peak_rss_mb": None})
    rows.append({"task": "digits (PNG folders)", "model": "majority class",
                 "test_accuracy": model.metrics["test"]["baseline"]["accuracy"], "seconds": 0.0, "epochs": None,
                 "peak_rss_mb": None})
    return rows


def write_results(rows: list[dict]) -> None:
    RESULTS.mkdir(exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "python": platform.python_version(), "torch": torch.__version__,
            "deepwell": dw.__version__, "cpu_threads": torch.get_num_threads()}
    (RESULTS / "media.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    lines = [f"# Unstructured-data benchmark ({meta['date']}, {meta['cpu_threads']} CPU threads)", "",
             "Same seeded, stratified 70/15/15 split for every model; baselines fit on train + validation. "
             "Peak memory is the process's peak resident set size after that step.", "",
             "| task | model | test accuracy | wall time (s) | epochs | peak RSS (MB) |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        rss = f"{r['peak_rss_mb']:.0f}" if r["peak_rss_mb"] else ""
        lines.append(f"| {r['task']} | {r['model']} | {r['test_accuracy']:.4f} | {r['seconds']:.1f} | "
                     f"{r['epochs'] or ''} | {rss} |")
    (RESULTS / "media.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = digits_benchmark(Path(tmp))
    write_results(rows)


if __name__ == "__main__":
    sys.exit(main())
