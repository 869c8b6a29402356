"""Ray benchmark (issue 16): the same fit on Adult locally, on 1 Ray Train worker and on 2; streamed too.

    python benchmarks/run_ray.py [--repeats 1] [--epochs N]

Adult (../shared/datasets/adult.csv), deepwell's fast preset (one network) and its own seeded split; each
variant trains through `deepwell.train` into its own run folder on a one-machine Ray cluster started once (its
start-up time is reported apart; each fit's Ray driver joins it by address). "streamed" variants read the table
with `data.streaming: always` (two passes, chunks on disk; on Ray, chunks streamed to the workers by Ray Data).
Reported per variant: wall time of the whole run (prepare, fit, score, run
folder), training seconds, epochs, test accuracy beside the majority baseline; Ray overhead = a Ray run's wall
time minus the local run's on the same work. Writes benchmarks/results/ray.json and ray.md. Run it alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
ADULT = ROOT.parent.parent / "shared" / "datasets" / "adult.csv"


VARIANTS = ("local", "1 worker", "2 workers", "local streamed", "2 workers streamed")


def one_run(variant: str, output: Path, epochs: int | None, address: str) -> dict:
    import deepwell as dw

    config: dict = {"data": {"streaming": "always" if variant.endswith("streamed") else "never"}}
    if not variant.startswith("local"):
        config["cluster"] = {"backend": "ray", "workers": int(variant.split()[0]), "address": address}
    started = time.perf_counter()
    model = dw.train(ADULT, "income", config=config, output=output, name=variant.replace(" ", "-"), quiet=True,
                     track=False, preset="fast", epochs=epochs)
    wall = time.perf_counter() - started
    training = model.metrics.training
    return {"variant": variant, "wall_s": round(wall, 1), "training_s": round(training.seconds, 1),
            "epochs": training.epochs_run, "best_epoch": training.best_epoch,
            "test_accuracy": round(model.metrics.test.model["accuracy"], 4),
            "majority_accuracy": round(model.metrics.test.baseline["accuracy"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=3, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    cluster_start = time.perf_counter() - started
    address = ray.get_runtime_context().gcs_address
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for repeat in range(args.repeats):
            for variant in VARIANTS:
                rows.append({**one_run(variant, Path(work) / str(repeat), args.epochs, address), "repeat": repeat})
                print(rows[-1], flush=True)
    ray.shutdown()
    summary = []
    for variant in VARIANTS:
        streamed = variant.endswith("streamed")
        local = statistics.median(r["wall_s"] for r in rows if r["variant"] == ("local streamed" if streamed
                                                                                else "local"))
        mine = [r for r in rows if r["variant"] == variant]
        wall = statistics.median(r["wall_s"] for r in mine)
        summary.append({"variant": variant, "wall_s": wall, "best_wall_s": min(r["wall_s"] for r in mine),
                        "training_s": statistics.median(r["training_s"] for r in mine),
                        "epochs": mine[0]["epochs"], "test_accuracy": statistics.mean(r["test_accuracy"] for r in mine),
                        "majority_accuracy": mine[0]["majority_accuracy"],
                        "ray_overhead_s": None if variant.startswith("local") else round(wall - local, 1)})
    result = {"dataset": str(ADULT.name), "cpus": os.cpu_count(), "cluster_start_s": round(cluster_start, 1),
              "repeats": args.repeats, "runs": rows, "summary": summary}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ray.json").write_text(json.dumps(result, indent=2))
    lines = ["# Ray Train on Adult: local vs 1 vs 2 workers", "",
             f"{os.cpu_count()} CPUs, one-machine Ray cluster (start-up {cluster_start:.1f} s, not counted below), "
             f"fast preset, median of {args.repeats} repeat(s). Wall = the whole `deepwell.train` run; Ray overhead "
             "= wall minus the local run's of the same kind (in memory or streamed).", "",
             "| variant | wall s | training s | epochs | test accuracy | majority | Ray overhead s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for s in summary:
        overhead = "" if s["ray_overhead_s"] is None else f"{s['ray_overhead_s']:.1f}"
        lines.append(f"| {s['variant']} | {s['wall_s']:.1f} | {s['training_s']:.1f} | {s['epochs']} | "
                     f"{s['test_accuracy']:.4f} | {s['majority_accuracy']:.4f} | {overhead} |")
    (RESULTS / "ray.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
