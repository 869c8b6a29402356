"""Serving benchmark (issue 12): single-row latency and throughput of `deepwell serve`, with and without
micro-batching, beside `mlflow models serve` of the very same model, for a tabular model (Adult) and an image
model (digit scans).

    python benchmarks/run_serving.py [--requests 2000]

Every server is a real process on 127.0.0.1, started and stopped by this script, one at a time; every request
is one row, sent as MLflow's `dataframe_split` to `/invocations` (both servers take it), by a small asyncio
HTTP/1.1 client with keep-alive connections (one per concurrent caller), so the client costs little CPU beside
the server. Latency at concurrency 1 is the single-row latency; throughput is requests answered per second.
At concurrency 32 the answers are also checked: no 5xx, and deepwell's predictions equal offline `predict`.

Writes benchmarks/results/serving.json and serving.md. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
ADULT = ROOT.parents[1] / "shared" / "datasets" / "adult.csv"
CONCURRENCY = (1, 8, 32)
WARMUP = 50
REPEATS = 3  # each measurement; the tables show the median run and the best
SERVERS = {  # name → extra `deepwell serve` options (None: `mlflow models serve`)
    "deepwell": [],
    "deepwell --threads 1": ["--threads", "1"],
    "deepwell --no-log": ["--no-log"],
    "deepwell --max-batch 1 (no micro-batching)": ["--max-batch", "1"],
    "mlflow models serve": None,
}


# --- a light HTTP load generator ---------------------------------------------------------------
async def _caller(port: int, path: str, bodies: list[bytes], counter, total: int, out: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (i := next(counter)) < total:
            body = bodies[i % len(bodies)]
            head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            started = time.perf_counter()
            writer.write(head + body)
            await writer.drain()
            answer = await reader.readuntil(b"\r\n\r\n")
            status = int(answer.split(b" ", 2)[1])
            length = int(re.search(rb"content-length:\s*(\d+)", answer, re.IGNORECASE).group(1))
            data = await reader.readexactly(length)
            out.append((i, status, time.perf_counter() - started, data))
    finally:
        writer.close()


def load(port: int, path: str, bodies: list[bytes], total: int, concurrency: int) -> dict:
    async def main() -> tuple[list, float]:
        counter, out = itertools.count(), []
        started = time.perf_counter()
        await asyncio.gather(*(_caller(port, path, bodies, counter, total, out) for _ in range(concurrency)))
        return out, time.perf_counter() - started

    out, seconds = asyncio.run(main())
    latencies = sorted(latency for _, _, latency, _ in out)
    return {"requests": total, "concurrency": concurrency, "seconds": round(seconds, 3),
            "throughput_rps": round(total / seconds, 1),
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 2),
            "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2),
            "server_errors": sum(status >= 500 for _, status, _, _ in out),
            "client_errors": sum(400 <= status < 500 for _, status, _, _ in out),
            "_answers": {i: data for i, _, _, data in out}}


# --- servers -------------------------------------------------------------------------------------
def wait_ready(process: subprocess.Popen, url: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.stderr.read()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer in {seconds:.0f} s") from None
            time.sleep(0.3)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kind: str, model_dir: Path, pyfunc_dir: Path, work: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    if SERVERS[kind] is None:
        command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(pyfunc_dir), "--env-manager",
                   "local", "--host", "127.0.0.1", "--port", str(port)]
        health = f"http://127.0.0.1:{port}/ping"
    else:
        command = [str(bin_dir / "deepwell"), "serve", str(model_dir), "--port", str(port), "--name", "model",
                   "--log", str(work / f"log-{len(list(work.glob('log-*')))}.sqlite"), *SERVERS[kind]]
        health = f"http://127.0.0.1:{port}/v2/health/ready"
    process = subprocess.Popen(command, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    wait_ready(process, health)
    return process, port


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


# --- models --------------------------------------------------------------------------------------
def tabular(work: Path):
    import deepwell as dw

    frame = pd.read_csv(ADULT)
    model = dw.train(frame, "income", output=work / "runs", name="adult", quiet=True, track=False)
    rows = frame.drop(columns="income").sample(200, random_state=0).reset_index(drop=True)
    return model, rows, rows


def image(work: Path):
    import deepwell as dw
    from deepwell.sample_data import write_digits

    folder = write_digits(work / "digits")
    model = dw.train(folder, output=work / "runs", name="digits", quiet=True, track=False)
    files = sorted(folder.rglob("*.png"))[::9][:200]
    column = model.input_columns[0]
    rows = pd.DataFrame({column: [base64.b64encode(f.read_bytes()).decode() for f in files]})
    return model, rows, pd.DataFrame({column: [str(f) for f in files]})


def pyfunc_copy(model_dir: Path, target: Path) -> Path:
    import mlflow

    from deepwell.tracking.tracker import PYFUNC_CODE

    mlflow.pyfunc.save_model(str(target), python_model=str(PYFUNC_CODE), artifacts={"deepwell_model": str(model_dir)})
    return target


def bodies_of(rows: pd.DataFrame) -> list[bytes]:
    return [json.dumps({"dataframe_split": json.loads(rows.iloc[[i]].to_json(orient="split", index=False))}).encode()
            for i in range(len(rows))]


def v2_bodies(rows: pd.DataFrame) -> list[bytes]:
    """One-row Open Inference Protocol requests (JSON tensors), as tritonclient sends them without binary data."""
    numeric = {c for c in rows.columns if pd.api.types.is_numeric_dtype(rows[c])}
    bodies = []
    for i in range(len(rows)):
        inputs = [{"name": c, "shape": [1], "datatype": "FP64" if c in numeric else "BYTES",
                   "data": [None if pd.isna(v) else (float(v) if c in numeric else str(v))]}
                  for c, v in rows.iloc[i].items()]
        bodies.append(json.dumps({"inputs": inputs}).encode())
    return bodies


def repeated(port: int, path: str, bodies: list[bytes], total: int, concurrency: int) -> tuple[dict, dict]:
    """REPEATS runs: the median one by throughput (with every run's p99) and the last run's answers."""
    runs = [load(port, path, bodies, total, concurrency) for _ in range(REPEATS)]
    answers = runs[-1].pop("_answers")
    for run in runs[:-1]:
        run.pop("_answers")
    ordered = sorted(runs, key=lambda r: r["throughput_rps"])
    median = dict(ordered[len(ordered) // 2])
    median["best_p99_ms"] = min(r["p99_ms"] for r in runs)
    median["runs_p99_ms"] = [r["p99_ms"] for r in runs]
    median["server_errors"] = sum(r["server_errors"] for r in runs)
    return median, answers


def measure(name: str, model, rows: pd.DataFrame, offline: pd.DataFrame, work: Path, total: int) -> dict:
    model_dir = model.run_dir / "model"
    pyfunc_dir = pyfunc_copy(model_dir, work / f"{name}-pyfunc")
    bodies = bodies_of(rows)
    expected = [str(v) for v in model.predict(offline)]
    results: dict = {"model": name, "parameters": model.parameter_count, "servers": {}}
    for kind in SERVERS:
        process, port = start(kind, model_dir, pyfunc_dir, work)
        try:
            load(port, "/invocations", bodies, WARMUP, 1)
            runs = {}
            for concurrency in CONCURRENCY:
                run, answers = repeated(port, "/invocations", bodies, total // 2 if concurrency == 1 else total,
                                        concurrency)
                if SERVERS[kind] is not None and concurrency == max(CONCURRENCY):
                    run["wrong_predictions"] = sum(_label(answers[i]) != expected[i % len(bodies)] for i in answers)
                runs[str(concurrency)] = run
                print(f"{name:7s} {kind:44s} c={concurrency:2d} {run['throughput_rps']:8.1f} req/s  p50 "
                      f"{run['p50_ms']:7.2f} ms  p99 {run['runs_p99_ms']} ms  5xx {run['server_errors']}", flush=True)
            if kind == "deepwell" and name == "adult":
                run, _ = repeated(port, "/v2/models/model/infer", v2_bodies(rows), total // 2, 1)
                runs["1 (V2 infer, JSON)"] = run
                print(f"{name:7s} {kind:44s} V2 c=1  p50 {run['p50_ms']:7.2f} ms  p99 {run['runs_p99_ms']} ms")
            results["servers"][kind] = runs
        finally:
            stop(process)
    return results


def _label(data: bytes) -> str:
    answer = json.loads(data)
    if "outputs" in answer:  # V2
        return str(next(o for o in answer["outputs"] if o["name"] == "label")["data"][0])
    return str(answer["predictions"][0])


def markdown(results: list[dict], machine: str) -> str:
    lines = ["# Serving benchmark", "", f"`python benchmarks/run_serving.py` on {machine}. One-row requests "
             "(MLflow's `dataframe_split`, `POST /invocations`, unless marked V2) from an asyncio keep-alive "
             "client on the same machine; latency at concurrency 1 is single-row latency; throughput in requests "
             f"per second. Each level run {REPEATS} times: the median run by throughput is shown, with the p99 of "
             "every run. Servers started one at a time; deepwell with its defaults unless named (1 worker × the "
             "machine's threads, micro-batching up to 256 rows with no wait, request log on); mlflow with "
             "`--env-manager local`, 1 worker.", ""]
    for result in results:
        lines += [f"## {result['model']} ({result['parameters']:,} parameters)", "",
                  "| server | concurrency | req/s | p50 ms | p99 ms (each run) | 5xx | wrong at 32 |",
                  "|---|---|---:|---:|---|---:|---:|"]
        for kind, runs in result["servers"].items():
            for c, run in runs.items():
                p99 = ", ".join(f"{v:g}" for v in run["runs_p99_ms"])
                lines.append(f"| {kind} | {c} | {run['throughput_rps']} | {run['p50_ms']} | {p99} | "
                             f"{run['server_errors']} | {run.get('wrong_predictions', '')} |")
        ours, theirs = result["servers"]["deepwell"], result["servers"]["mlflow models serve"]
        top = str(max(CONCURRENCY))
        ratio = ours[top]["throughput_rps"] / theirs[top]["throughput_rps"]
        lines += ["", f"- single-row p99 (best run): deepwell {ours['1']['best_p99_ms']} ms, mlflow "
                      f"{theirs['1']['best_p99_ms']} ms; p50 {ours['1']['p50_ms']} ms against "
                      f"{theirs['1']['p50_ms']} ms",
                  f"- throughput at concurrency {top}: deepwell / mlflow = **{ratio:.2f}×**", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per run at concurrency 8 and 32 "
                        "(half as many at 1)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import platform

    machine = f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, build in (("adult", tabular), ("digits", image)):
            model, rows, offline = build(work)
            results.append(measure(name, model, rows, offline, work, args.requests))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    (RESULTS / "serving.md").write_text(markdown(results, machine))
    print((RESULTS / "serving.md").read_text())


if __name__ == "__main__":
    main()
