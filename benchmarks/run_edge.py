"""Edge benchmark (issue 15): PyTorch eager vs ONNX fp32 vs ONNX int8, for a tabular, an image and a text model.

    python benchmarks/run_edge.py [--repeats 200]

Each model is trained with deepwell's defaults on its seeded split (Adult from ../shared/datasets, digits as PNG
class folders, SMS spam from ../shared/datasets with the default text model), then exported with `deepwell
export` twice (fp32, int8). On the run's test split it measures, for each way of running the model:
- latency at batch 1 (median and best of --repeats single-row predictions) and throughput at batch 256 (rows/s,
  best of 5), end to end (records in, predictions out: preprocessing included) and for the network alone (the
  encoded inputs through torch or onnxruntime);
- accuracy on the test split, and size on disk (the model folder; the exported folder);
- for the runtimes themselves, each in a fresh process: import time (best of 5) and peak resident memory after
  loading the model and predicting one row — the full package (`deepwell.load`) against the edge runtime
  (`deepwell.edge.load`); and the deepwell-edge wheel's size and the installed size of its dependencies against
  the full package's.

Bars: int8 ≥ 2× faster than eager at batch 1 on the tabular model with ≤ 0.5 points of accuracy lost; the edge
runtime's resident memory under a third of the full package's. Writes benchmarks/results/edge.{json,md}. Run it
alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import deepwell as dw
from deepwell.sample_data import write_digits

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared" / "datasets"
SEED = 0


def train(kind: str, work: Path) -> tuple[dw.Model, pd.DataFrame, Path | None]:
    """(model, its test rows with the target, the folder their file paths are relative to)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "tabular":
            model = dw.train(SHARED / "adult.csv", "income", output=work, name=kind, seed=SEED, quiet=True, track=False)
        elif kind == "image":
            folder = write_digits(work / "digits")
            model = dw.train(folder, output=work, name=kind, seed=SEED, quiet=True, track=False)
        else:
            model = dw.train(SHARED / "sms_spam.csv", "label", output=work, name=kind, seed=SEED, quiet=True,
                             track=False)
    rows = pd.read_csv(model.run_dir / "predictions.csv")
    keep = [c for c in rows.columns if c in model.input_columns or c == model.target]
    return model, rows[keep], None


def timed(function, repeats: int) -> list[float]:
    function()  # warm-up
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        out.append(time.perf_counter() - start)
    return out


def records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
            for r in frame.to_dict("records")]


def measure(name: str, predict, network, rows: pd.DataFrame, target: str, repeats: int) -> dict:
    """End-to-end and network-only latency and throughput of one way of running the model, and its accuracy."""
    features = rows.drop(columns=[target])
    one, batch = records(features.head(1)), records(features.head(256))
    single = timed(lambda: predict(one), repeats)
    many = timed(lambda: predict(batch), 5)
    labels = predict(records(features))
    truth = rows[target].astype(str).tolist()
    net_one, net_batch = network(1), network(256)
    net_single = timed(net_one, repeats)
    net_many = timed(net_batch, 5)
    return {"runtime": name, "accuracy": round(float(np.mean([str(p) == t for p, t in zip(labels, truth,
                                                                                          strict=True)])), 4),
            "latency_ms_median": round(1000 * statistics.median(single), 3),
            "latency_ms_best": round(1000 * min(single), 3),
            "rows_per_s_256": round(256 / min(many), 0),
            "network_latency_ms_median": round(1000 * statistics.median(net_single), 3),
            "network_rows_per_s_256": round(256 / min(net_many), 0)}


def folder_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6, 2)


def benchmark(kind: str, work: Path, repeats: int) -> dict:
    import torch

    from deepwell.edge import load as load_edge
    from deepwell.inference.predict import encode_frame

    model, rows, _ = train(kind, work)
    for feature in model.preprocessor.features:  # frozen embeddings: computed per prediction, as the edge runtime
        options = getattr(feature.options, "text", None)  # does, not looked up in the cache training filled
        if options is not None and getattr(options, "cache_embeddings", False):
            options.cache_embeddings = False
    target = model.target
    features = rows.drop(columns=[target])
    exports = {}
    for quantize in ("none", "int8"):
        exports[quantize] = model.export(work / f"{kind}-{quantize}", quantize=quantize, min_agreement=0.97)
    encoded = {n: encode_frame(model, features.head(n)) for n in (1, 256)}

    def torch_network(n):
        inputs = encoded[n]
        return lambda: model.network(inputs) if torch.is_inference_mode_enabled() else _no_grad(model, inputs)

    measured = [measure("PyTorch eager", lambda r: model.predict(r).tolist(), torch_network, rows, target, repeats)]
    for quantize, label in (("none", "ONNX fp32"), ("int8", "ONNX int8")):
        runtime = load_edge(work / f"{kind}-{quantize}")
        arrays = {n: {k: v.numpy() for k, v in encoded[n].items()} for n in (1, 256)}
        measured.append(measure(label, lambda r, m=runtime: m.predict(r).predictions,
                                lambda n, m=runtime, a=arrays: (lambda: m.run(a[n])), rows, target, repeats))
    sizes = {"PyTorch eager": folder_mb(model.run_dir / "model"), "ONNX fp32": folder_mb(work / f"{kind}-none"),
             "ONNX int8": folder_mb(work / f"{kind}-int8")}
    for row in measured:
        row["size_mb"] = sizes[row["runtime"]]
    int8 = exports["int8"]
    return {"model": kind, "test_rows": len(rows), "rows": measured, "int8_method": int8.quantization,
            "int8_agreement": int8.agreement,
            "runtime_memory": runtime_memory(model.run_dir, work / f"{kind}-int8", features.head(1), work)}


def _no_grad(model, inputs):
    import torch

    with torch.inference_mode():
        return model.network(inputs)


FULL = """
import sys, time
start = time.perf_counter()
import deepwell
imported = time.perf_counter() - start
model = deepwell.load(sys.argv[1])
model.predict(sys.argv[2])
ready = time.perf_counter() - start
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")).split()[1]
print(imported, ready, int(peak) / 1024)
"""
EDGE = FULL.replace("import deepwell\n", "import deepwell.edge\n").replace("deepwell.load(", "deepwell.edge.load(")


def runtime_memory(run_dir: Path, exported: Path, row: pd.DataFrame, work: Path) -> dict:
    """A fresh process that imports the runtime, loads the model and predicts one row: the import's time and the
    time to that first prediction (best of 5), and its peak resident memory (VmHWM, median of 5; ru_maxrss would
    count the parent's memory before exec)."""
    path = work / "one_row.csv"
    row.to_csv(path, index=False)
    out = {}
    for name, code, folder in (("full package", FULL, run_dir), ("edge runtime", EDGE, exported)):
        runs = []
        for _ in range(5):
            done = subprocess.run([sys.executable, "-c", code, str(folder), str(path)], capture_output=True, text=True,
                                  check=True)
            runs.append([float(x) for x in done.stdout.split()])
        out[name] = {"import_s": round(min(r[0] for r in runs), 3),
                     "first_prediction_s": round(min(r[1] for r in runs), 3),
                     "peak_rss_mb": round(statistics.median(r[2] for r in runs), 1)}
    return out


def install_sizes(work: Path) -> dict:
    """The deepwell-edge wheel, and the installed size of each runtime's dependency closure (this machine's)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import tomllib

    from test_edge_install import dependency_closure, edge_wheel

    def closure_mb(requirements: list[str]) -> float:
        total = 0
        for distribution in dependency_closure(requirements).values():
            for file in distribution.files or []:
                path = Path(str(distribution.locate_file(file)))
                total += path.stat().st_size if path.is_file() else 0
        return round(total / 1e6, 1)

    wheel = edge_wheel(work / "wheel")
    edge = tomllib.loads((ROOT / "edge" / "pyproject.toml").read_text())["project"]["dependencies"]
    full = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {"edge_wheel_kb": round(wheel.stat().st_size / 1e3, 1), "edge_install_mb": closure_mb(edge),
            "full_install_mb": closure_mb(full)}


def markdown(results: list[dict], sizes: dict) -> str:
    lines = ["# Edge: PyTorch eager vs ONNX fp32 vs ONNX int8", "",
             "Each model trained with deepwell's defaults; measured on its run's test split, on this machine "
             "(2 CPU cores, both runtimes on both). End to end: records in, predictions out (preprocessing "
             "included). Network: the encoded inputs through torch or onnxruntime (for the text model the frozen "
             "MiniLM sentence encoder runs in preprocessing, so its network is the head alone; end to end it runs per "
             "prediction in every runtime, the full package's embedding cache turned off). Latency: median of "
             "single-row predictions; throughput: best of 5 batches of 256 rows.", ""]
    for result in results:
        lines += [f"## {result['model']} ({result['test_rows']} test rows; int8 {result['int8_method']}, "
                  f"{result['int8_agreement']:.2%} of fp32's labels)", "",
                  "| runtime | accuracy | latency, batch 1 | rows/s, batch 256 | network latency | network rows/s "
                  "| size on disk |", "|---|---:|---:|---:|---:|---:|---:|"]
        for row in result["rows"]:
            lines.append(f"| {row['runtime']} | {row['accuracy']:.4f} | {row['latency_ms_median']:.3f} ms | "
                         f"{row['rows_per_s_256']:,.0f} | {row['network_latency_ms_median']:.3f} ms | "
                         f"{row['network_rows_per_s_256']:,.0f} | {row['size_mb']:.2f} MB |")
        memory = result["runtime_memory"]
        lines += ["", "| runtime process (load + one row) | import | to the first prediction | peak RSS |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {name} | {m['import_s']:.3f} s | {m['first_prediction_s']:.2f} s | {m['peak_rss_mb']:.0f} MB |"
                  for name, m in memory.items()]
        lines.append("")
    lines += [f"deepwell-edge wheel: {sizes['edge_wheel_kb']} kB; installed with its dependencies: "
              f"{sizes['edge_install_mb']} MB (the full package's own dependencies, no extras: "
              f"{sizes['full_install_mb']} MB).", ""]
    return "\n".join(lines)


def merged(results: list[dict]) -> list[dict]:
    """The models not run now (--models) keep their last results."""
    path = RESULTS / "edge.json"
    ran = {r["model"] for r in results}
    kept = [r for r in json.loads(path.read_text())["results"] if r["model"] not in ran] if path.is_file() else []
    order = ["tabular", "image", "text"]
    return sorted(results + kept, key=lambda r: order.index(r["model"]) if r["model"] in order else 9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--models", default="tabular,image,text")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.models.split(","):
            results.append(benchmark(kind, Path(tmp) / kind, args.repeats))
            print(json.dumps(results[-1]), flush=True)
        sizes = install_sizes(Path(tmp))
    RESULTS.mkdir(exist_ok=True)
    results = merged(results)
    (RESULTS / "edge.json").write_text(json.dumps({"results": results, "install": sizes}, indent=1))
    (RESULTS / "edge.md").write_text(markdown(results, sizes))
    print(markdown(results, sizes))


if __name__ == "__main__":
    main()
