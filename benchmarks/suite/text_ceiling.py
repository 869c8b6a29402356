"""Where a text set's own-tokenizer errors come from (issue 11): the same rows whatever the seed, or beyond reach?

    python -m benchmarks.suite.text_ceiling [--dataset sms-spam] [--seeds 42,1,2] [--networks 10]

On the dataset's fixed split, trains deepwell's defaults with the own tokenizer alone (no sentence encoder) and
`model.ensemble_size: NETWORKS` once per seed, keeps every network's test probabilities, and reports the errors of
the first network, of the first few (the members the preset gives the set: the default ensemble), of all of a seed's
networks, and of
every network of every seed averaged (the limit more networks approach), and which test rows every seed's default
ensemble gets wrong. Beside them, classical models on features learned from the same training rows (TF-IDF with
sublinear counts: word 1–2-grams with logistic regression, character n-grams with a linear SVM) and which of those
rows they miss. Writes benchmarks/results/text-ceiling-<dataset>.{json,md}. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.suite.datasets import SUITE  # noqa: E402
from benchmarks.suite.run import RESULTS  # noqa: E402


def text_column(frame, target: str) -> str:
    return next(c for c in frame.columns if c not in (target, "split"))


def network_probabilities(frame, target: str, column: str, seed: int,
                          networks: int) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    """[networks, rows, classes] test probabilities of each member, the test labels (class indices), the texts, and
    how many members the default ensemble has (the first that many of the networks: presets.member_configs)."""
    import torch

    from deepwell.inference.network import network_outputs
    from deepwell.pipeline.fit import fit
    from deepwell.pipeline.prepare import prepare

    config = {"target": target, "split": {"column": "split"}, "training": {"seed": seed},
              "columns": {column: {"type": "text", "text": {"sentence_encoder": "none"}}}}
    prepared = prepare(frame, target, config)
    default = int(prepared.config.model.ensemble_size)
    resolved = prepared.config.model_copy(deep=True)
    resolved.model.ensemble_size = max(networks, default)
    fitted = fit(resolved, prepared.splits)
    test = fitted.preprocessor.transform(prepared.splits.test)
    labels = fitted.preprocessor.transform_target(prepared.splits.test).numpy()
    members = list(getattr(fitted.network, "members", [fitted.network]))
    device = torch.device(fitted.device)
    texts = prepared.splits.test[column].astype(str).tolist()
    probabilities = np.stack([network_outputs(m, test, fitted.config.task, device) for m in members])
    return probabilities, labels, texts, default


def errors(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices of the rows the averaged networks get wrong."""
    return np.flatnonzero(probabilities.mean(axis=0).argmax(axis=1) != labels)


def classical(frame, target: str, column: str) -> list[dict]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.svm import LinearSVC

    def words():
        return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)

    def characters(**kw):
        return TfidfVectorizer(sublinear_tf=True, **kw)

    models = {
        "word 1–2-grams, logistic regression (C = 10)": make_pipeline(words(), LogisticRegression(C=10, max_iter=2000)),
        "character 2–5-grams within words, linear SVM": make_pipeline(
            characters(analyzer="char_wb", ngram_range=(2, 5)), LinearSVC()),
        "character 1–5-grams, case kept, linear SVM": make_pipeline(
            characters(analyzer="char", ngram_range=(1, 5), lowercase=False), LinearSVC()),
        "word 1–2-grams + character 1–5-grams with case, linear SVM": make_pipeline(
            make_union(words(), characters(analyzer="char", ngram_range=(1, 5), lowercase=False)), LinearSVC()),
    }
    train, test = frame[frame.split == "train"], frame[frame.split == "test"]
    results = []
    for name, model in models.items():
        model.fit(train[column], train[target])
        wrong = np.flatnonzero(model.predict(test[column]) != test[target].to_numpy())
        results.append({"model": name, "accuracy": round(1 - len(wrong) / len(test), 4), "errors": wrong.tolist()})
    return results


def markdown(report: dict) -> str:
    n, rows = report["networks"], report["test_rows"]
    lines = [f"# Own-tokenizer errors on {report['dataset']} ({report['date']}, seeds {report['seeds']})", "",
             f"Test split: {rows} rows (one error: {100 / rows:.2f} pt). Errors of the averaged networks per seed.", "",
             "| networks averaged | " + " | ".join(f"seed {s}" for s in report["seeds"]) + " | mean accuracy |",
             "|---|" + "---:|" * (len(report["seeds"]) + 1)]
    for label, key in ((1, "one"), (report["default_members"], "default"), (n, "all")):
        counts = report["errors"][key]
        accuracy = 1 - sum(counts) / (len(counts) * rows)
        lines.append(f"| {label} | " + " | ".join(str(c) for c in counts) + f" | {accuracy:.4f} |")
    lines += [f"| all {n * len(report['seeds'])} networks of the seeds | {report['errors']['pooled']} errors "
              + "| " * (len(report["seeds"]) - 1) + f"| {1 - report['errors']['pooled'] / rows:.4f} |", "",
              f"Wrong in every seed's default ensemble ({len(report['always_wrong'])} rows; label, p(label) averaged "
              "over every network, text):", ""]
    lines += [f"- {r['label']}, {r['probability']:.2f}: {r['text'][:100]}" for r in report["always_wrong"]]
    lines += ["", "| classical model (same training rows) | test accuracy | errors | of those rows |",
              "|---|---:|---:|---:|"]
    always = {r["row"] for r in report["always_wrong"]}
    lines += [f"| {c['model']} | {c['accuracy']:.4f} | {len(c['errors'])} | {len(always & set(c['errors']))} |"
              for c in report["classical"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="sms-spam")
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--networks", type=int, default=10)
    args = parser.parse_args()
    dataset = next(d for d in SUITE if d.name == args.dataset)
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.strftime("%Y-%m-%d %H:%M")
    with tempfile.TemporaryDirectory() as work:
        frame = dataset.frame(Path(work))
    column = text_column(frame, dataset.target)
    runs = [network_probabilities(frame, dataset.target, column, seed, args.networks) for seed in seeds]
    _, labels, texts, default = runs[0]
    if texts != frame[frame.split == "test"][column].astype(str).tolist():
        raise RuntimeError("the prepared test rows are not in the table's order: the classical errors would not match")
    seeded = [p for p, _, _, _ in runs]
    pooled = np.concatenate(seeded)
    mean = pooled.mean(axis=0)
    always = sorted(set.intersection(*(set(errors(p[:default], labels).tolist()) for p in seeded)))
    classes = sorted(frame[dataset.target].unique())
    report = {"dataset": dataset.name, "date": started, "seeds": seeds, "networks": args.networks,
              "default_members": default, "test_rows": len(labels),
              "errors": {"one": [len(errors(p[:1], labels)) for p in seeded],
                         "default": [len(errors(p[:default], labels)) for p in seeded],
                         "all": [len(errors(p, labels)) for p in seeded],
                         "pooled": len(errors(pooled, labels))},
              "always_wrong": [{"row": int(i), "label": str(classes[labels[i]]), "text": texts[i],
                                "probability": round(float(mean[i, labels[i]]), 3)} for i in always],
              "classical": classical(frame, dataset.target, column)}
    stem = RESULTS / f"text-ceiling-{dataset.name}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
