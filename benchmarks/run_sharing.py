"""Sharing the CPU (issue 10): two trainings at once against one alone, on the same machine in one run.

Each training is a `deepwell train` process with a fixed number of epochs (no early stopping), on digit scans
(a CNN) and on Adult (an MLP). "alone" is the best of two solo runs; "together" starts two identical runs at
the same moment. The figure compared is the training time the run reports (metrics.json), so imports and the
report page do not blur it; wall time is kept too. Two settings:
- `torch default`: what deepwell did before — OpenMP's own waiting policy (spin, then sleep);
- `deepwell`: threads from the CPUs this process may use, OpenMP told to sleep while waiting (the CLI's default).

Bar: together within 2.5× of alone (two processes on two cores cannot beat 2×).
Writes benchmarks/results/sharing.{json,md}. Run it alone on the machine.

`--ablation` compares the chosen setting with short spinning instead (GOMP_SPINCOUNT: spin that many times, then
sleep), which might win back some of the solo cost of sleeping; writes sharing_ablation.{json,md}.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
ADULT = ROOT.parents[1] / "shared" / "datasets" / "adult.csv"
SETTINGS = {"torch default": {"OMP_WAIT_POLICY": ""}, "deepwell": {}}
ABLATION = {"deepwell": {}, "spin 1000": {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": "1000"},
            "spin 20000": {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": "20000"}}


def jobs(work: Path) -> dict[str, list[str]]:
    from deepwell.sample_data import write_digits

    digits = write_digits(work / "digits")
    image = {"target": "label", "task": "multiclass",
             "columns": {"image": {"type": "image", "image": {"size": 16, "width": 8, "flip": False}}},
             "training": {"epochs": 6, "patience": 100}}
    (work / "digits.yaml").write_text(yaml.safe_dump(image))
    out = {"digits CNN (1,797 images, 6 epochs)": [str(digits), "--config", str(work / "digits.yaml")]}
    if ADULT.exists():
        (work / "adult.yaml").write_text(yaml.safe_dump({"target": "income", "training": {"epochs": 4,
                                                                                          "patience": 100}}))
        out["Adult MLP (32,561 rows, 4 epochs)"] = [str(ADULT), "--config", str(work / "adult.yaml")]
    return out


def start(args: list[str], work: Path, name: str, env: dict[str, str]) -> tuple[subprocess.Popen, Path, float]:
    command = [sys.executable, "-m", "deepwell.cli.main", "train", *args, "-o", str(work / "runs"), "--name", name,
               "-q", "--no-track"]
    return subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE), work / "runs" / name, time.perf_counter()


def finish(process: subprocess.Popen, run: Path, started: float) -> dict[str, float]:
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(stderr.decode()[-2000:])
    wall = time.perf_counter() - started
    seconds = json.loads((run / "metrics.json").read_text())["training"]["seconds"]
    return {"training_s": seconds, "wall_s": round(wall, 2)}


def measure(args: list[str], work: Path, env: dict[str, str], tag: str) -> dict:
    alone = [finish(*start(args, work, f"{tag}-alone-{i}", env)) for i in range(2)]
    pair = [start(args, work, f"{tag}-together-{i}", env) for i in range(2)]
    together = [finish(*p) for p in pair]
    best_alone = min(r["training_s"] for r in alone)
    return {"alone": alone, "together": together, "alone_best_s": best_alone,
            "together_s": [r["training_s"] for r in together],
            "slowdown": round(max(r["training_s"] for r in together) / best_alone, 2)}


def main() -> None:
    ablation = "--ablation" in sys.argv
    settings, name = (ABLATION, "sharing_ablation") if ablation else (SETTINGS, "sharing")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for job, args in jobs(work).items():
            for setting, env in settings.items():
                tag = f"{len(rows)}"
                rows[f"{job} | {setting}"] = measure(args, work, env, tag)
                print(job, setting, rows[f"{job} | {setting}"]["slowdown"], file=sys.stderr)
    RESULTS.mkdir(exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count()}
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "runs": rows}, indent=1) + "\n")
    title = "Ablation, two trainings" if ablation else "Two trainings"
    lines = [f"# {title} at once against one alone ({meta['date']}, {meta['cpus']} CPUs)", "",
             "Training seconds as each run reports them; alone = best of 2; together = two identical runs started "
             "at once (the slower one counts). Bar: together ≤ 2.5× alone.", "",
             "| job | setting | alone (s) | together (s) | slowdown | bar |", "|---|---|---:|---:|---:|---|"]
    for key, row in rows.items():
        job, setting = key.split(" | ")
        together = " / ".join(f"{s:.1f}" for s in row["together_s"])
        lines.append(f"| {job} | {setting} | {row['alone_best_s']:.1f} | {together} | {row['slowdown']:.2f}× | "
                     f"{'✓' if row['slowdown'] <= 2.5 else '✗'} |")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
