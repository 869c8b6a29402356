"""Streaming benchmark (issue 16): training on a generated table larger than memory would like, read in batches.

    python benchmarks/run_streaming.py [--rows 10000000] [--epochs 2] [--work /tmp/deepwell-stream]

Generates (once, kept in --work) a Parquet folder of `rows` rows — five numbers, three categories (10 to 1,000
values), a short text column of a few words — whose binary label depends on all of them with noise, then trains
deepwell's default tabular network on it with `data.streaming: always` in a child process, and reports:
the two streaming passes' time (summaries, then chunks on disk), training rows per second (training rows ×
epochs / training seconds), peak resident memory of the training process, test accuracy on every test row beside
the majority baseline and a logistic regression fitted on the training sample's numbers and categories. Beside
the streamed rate, the same network and batch size trained in memory on the table's first million rows (the
trainer's own rate on this machine: what streaming could reach at best), and the machine's ceiling for the network:
its matrix multiplies alone at the best float32 rate measured here.

Writes benchmarks/results/streaming.json and streaming.md. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
FILE_ROWS = 500_000
WORDS = np.array(["red", "blue", "green", "fast", "slow", "big", "small", "old", "new", "warm", "cold", "dark"])


def generate(folder: Path, rows: int) -> Path:
    """The table, FILE_ROWS rows per Parquet file, generated file by file (memory stays at one file)."""
    done = folder / f"rows-{rows}"
    if (done / "_complete").exists():
        return done
    done.mkdir(parents=True, exist_ok=True)
    for index, start in enumerate(range(0, rows, FILE_ROWS)):
        part_rows = min(FILE_ROWS, rows - start)
        generate_part(np.random.default_rng(index), part_rows).to_parquet(done / f"part-{index:04d}.parquet",
                                                                            index=False)
    (done / "_complete").write_text("")
    return done


def generate_part(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    numbers = rng.normal(size=(rows, 5))
    numbers[:, 4] = np.exp(numbers[:, 4])  # a skewed one
    shop = rng.integers(0, 1000, rows)
    region = rng.integers(0, 10, rows)
    kind = rng.integers(0, 50, rows)
    first, second = rng.integers(0, len(WORDS), rows), rng.integers(0, len(WORDS), rows)
    score = (numbers[:, 0] - 0.5 * numbers[:, 1] + np.sin(2 * numbers[:, 2]) + 0.3 * np.log(numbers[:, 4])
             + 0.8 * np.cos(shop * 0.7) + 0.4 * (region - 4.5) / 3 + 0.5 * (first < 3) - 0.5 * (second > 8)
             + rng.normal(scale=0.7, size=rows))
    frame = pd.DataFrame(numbers, columns=[f"n{i}" for i in range(5)])
    frame["shop"] = np.char.add("s", shop.astype(str))
    frame["region"] = np.char.add("r", region.astype(str))
    frame["kind"] = np.char.add("k", kind.astype(str))
    frame["note"] = np.char.add(np.char.add(WORDS[first], " "), WORDS[second])
    frame["label"] = np.where(score > 0, "yes", "no")
    return frame


def rss_timeline(every: float = 5.0) -> list[tuple[float, int]]:
    """(seconds, resident MB) of this process every `every` seconds, filled by a daemon thread until exit."""
    import threading

    timeline: list[tuple[float, int]] = []
    started = time.perf_counter()

    def sample() -> None:
        while True:
            rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS"))
            timeline.append((round(time.perf_counter() - started), rss // 1024))
            time.sleep(every)

    threading.Thread(target=sample, daemon=True).start()
    return timeline


def child(folder: Path, epochs: int, output: Path) -> dict:
    import deepwell as dw

    timeline = rss_timeline()
    started = time.perf_counter()
    config = {"data": {"streaming": "always"}, "explain": {"enabled": False},
              "columns": {"note": {"type": "text"}}}
    model = dw.train(folder, "label", config=config, output=output, seed=0, quiet=True, track=False, epochs=epochs)
    wall = time.perf_counter() - started
    metrics = model.metrics
    training = metrics.training
    split = metrics.split
    return {"wall_s": round(wall, 1), "training_s": round(training.seconds, 1), "epochs": training.epochs_run,
            "split": split, "rows_per_s": round(split["train"] * training.epochs_run / training.seconds),
            "test_accuracy": round(metrics.test.model["accuracy"], 4),
            "majority_accuracy": round(metrics.test.baseline["accuracy"], 4),
            "batch_size": training.batch_size, "parameters": training.parameters,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
            "rss_timeline_mb": list(timeline)}


def in_memory(folder: Path, batch_size: int, rows: int = 1_000_000) -> dict:
    """Training rows per second of the same network and batch on the first `rows` rows held in memory."""
    import deepwell as dw

    frame = pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))[:max(1, rows // FILE_ROWS)]])
    config = {"data": {"streaming": "never"}, "explain": {"enabled": False},
              "columns": {"note": {"type": "text", "text": {"sentence_encoder": "none"}}},  # as a streamed table
              "training": {"batch_size": batch_size}}
    with tempfile.TemporaryDirectory() as output:
        model = dw.train(frame, "label", config=config, output=output, seed=0, quiet=True, track=False, epochs=1)
    training = model.metrics.training
    return {"in_memory_rows_per_s": round(model.metrics.split["train"] / training.seconds),
            "in_memory_parameters": training.parameters, **compute_ceiling(model.network, batch_size)}


def compute_ceiling(network, batch_size: int) -> dict:
    """The most training rows per second this machine's matrix multiplies allow the network: its dense layers'
    multiply-adds per row × 6 (forward 2; backward 4: the input's and the weights' gradients) against the best
    float32 matmul rate measured here on any of the network's layer shapes, every other operation taken as free."""
    import torch

    linears = [m for m in network.modules() if isinstance(m, torch.nn.Linear)]
    flops_per_row = 6 * sum(m.in_features * m.out_features for m in linears)
    repeats, best_rate = 50, 0.0
    for rows_in, rows_out in {(m.in_features, m.out_features) for m in linears}:
        a, b = torch.randn(batch_size, rows_in), torch.randn(rows_in, rows_out)
        for _ in range(5):  # the best of five timings
            started = time.perf_counter()
            for _ in range(repeats):
                a @ b
            best_rate = max(best_rate, 2 * batch_size * rows_in * rows_out * repeats / (time.perf_counter() - started))
    return {"flops_per_training_row": flops_per_row, "matmul_gflops": round(best_rate / 1e9, 1),
            "ceiling_rows_per_s": round(best_rate / flops_per_row), "threads": torch.get_num_threads()}


def linear_baseline(folder: Path, sample_rows: int = 200_000) -> float:
    """Logistic regression on one-hot categories and standardised numbers: fitted on the first rows' training
    part, scored on their test part (the same hash split deepwell uses is not needed: rows are i.i.d.)."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.read_parquet(sorted(folder.glob("*.parquet"))[0]).head(sample_rows + 50_000)
    x, y = frame.drop(columns=["label"]), frame["label"]
    model = make_pipeline(make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["shop", "region", "kind", "note"]),
        (StandardScaler(), [f"n{i}" for i in range(5)])), LogisticRegression(max_iter=1000))
    model.fit(x.iloc[:sample_rows], y.iloc[:sample_rows])
    return round(float(model.score(x.iloc[sample_rows:], y.iloc[sample_rows:])), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/deepwell-stream"))
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        row = child(args.child, args.epochs, args.work / "runs")
        print(json.dumps(row), flush=True)  # the streamed run's line first: kept if the in-memory one fails
        print(json.dumps(in_memory(args.child, row["batch_size"])))
        return
    started = time.perf_counter()
    folder = generate(args.work, args.rows)
    generated = time.perf_counter() - started
    size = sum(p.stat().st_size for p in folder.glob("*.parquet"))
    done = subprocess.run([sys.executable, __file__, "--child", str(folder), "--epochs", str(args.epochs),
                           "--work", str(args.work)], capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"training failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    row = {**json.loads(lines[-2]), **json.loads(lines[-1])}
    row.update(rows=args.rows, parquet_mb=round(size / 1e6), generate_s=round(generated, 1),
               logistic_regression_accuracy=linear_baseline(folder))
    print(row)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "streaming.json").write_text(json.dumps(row, indent=1))
    (RESULTS / "streaming.md").write_text(markdown(row))
    print(markdown(row))


def markdown(row: dict) -> str:
    split = row["split"]
    return "\n".join([
        "# Streaming training: a generated table read in record batches", "",
        f"{row['rows']:,} rows in Parquet ({row['parquet_mb']:,} MB on disk): five numbers, three categories, a short "
        "text; binary label. `data.streaming: always`, the default tabular network and preset, "
        f"{row['epochs']} epochs. Split by row hash: {split['train']:,} train, {split['validation']:,} validation, "
        f"{split['test']:,} test.", "",
        "| measure | value |", "|---|---:|",
        f"| wall time, whole run (both passes, training, scoring, run folder) | {row['wall_s']:,.0f} s |",
        f"| training time | {row['training_s']:,.0f} s |",
        f"| training rows per second | {row['rows_per_s']:,} |",
        f"| the same network and batch in memory (first 1M rows), rows per second | "
        f"{row.get('in_memory_rows_per_s', 0):,} |",
        f"| the ceiling: matmul rate measured here ({row.get('matmul_gflops', 0)} GFLOP/s, float32, "
        f"{row.get('threads', 0)} threads) / the dense layers' {row.get('flops_per_training_row', 0):,} FLOPs per "
        f"training row, all else free | {row.get('ceiling_rows_per_s', 0):,} |",
        f"| peak resident memory of the training process | {row['peak_rss_mb']:,} MB |",
        f"| largest peak of one of its worker processes (pass 2; they share the parent's pages) | "
        f"{row.get('worker_peak_rss_mb', 0):,} MB |",
        f"| test accuracy (every test row) | {row['test_accuracy']:.4f} |",
        f"| majority class | {row['majority_accuracy']:.4f} |",
        f"| logistic regression (200k training rows, one-hot) | {row['logistic_regression_accuracy']:.4f} |",
        f"| batch size / parameters | {row['batch_size']} / {row['parameters']:,} |", ""])


if __name__ == "__main__":
    main()
