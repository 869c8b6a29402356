"""Tabular benchmark (issue 2): accuracy and wall time against scikit-learn, and deepwell's training overhead.

1. Adult (../shared/datasets/adult.csv), breast cancer and wine (scikit-learn): deepwell with default settings
   beside HistGradientBoosting and LogisticRegression, all trained in this run on the same split
   (the scikit-learn models get train + validation rows, since deepwell uses validation for early stopping)
   and scored on the same held-out test rows.
2. Overhead: on Adult, the same network, tensors, batch size and epochs trained by a minimal hand-written
   PyTorch loop (shuffle, forward, backward, step, one validation pass per epoch) and by deepwell's trainer
   (which adds the schedule, validation metrics, early-stopping bookkeeping and a checkpoint per epoch, and
   a weight-average update per step).
   Interleaved repeats, median reported.

Writes benchmarks/results/tabular.json and tabular.md. Run: `make benchmark` (or python benchmarks/run_tabular.py).
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import deepwell as dw
from deepwell.config import SplitConfig
from deepwell.data.split import split_table
from deepwell.pipeline.fit import fit_preprocessor, metric_fn
from deepwell.pipeline.prepare import prepare
from deepwell.training.callbacks import Checkpoint, EarlyStopping
from deepwell.training.trainer import TensorData, Trainer

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
ADULT = ROOT.parents[1] / "shared" / "datasets" / "adult.csv"
SEED = 42


def datasets() -> dict[str, tuple[pd.DataFrame, str]]:
    out = {}
    if ADULT.exists():
        out["adult"] = (pd.read_csv(ADULT), "income")
    else:
        print(f"skipping Adult: {ADULT} not found", file=sys.stderr)
    cancer = load_breast_cancer(as_frame=True).frame
    cancer["diagnosis"] = cancer.pop("target").map({0: "malignant", 1: "benign"})
    out["breast_cancer"] = (cancer, "diagnosis")
    wine = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    out["wine"] = (wine, "cultivar")
    return out


def same_split(frame: pd.DataFrame, target: str, seed: int = SEED):
    """The split deepwell makes with its default settings (seeded, stratified 70/15/15)."""
    return split_table(frame, SplitConfig(), seed=seed, stratify_by=target, target=target)


def sklearn_models(frame: pd.DataFrame, target: str) -> dict[str, object]:
    features = frame.drop(columns=target)
    categorical = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    numeric = [c for c in features.columns if c not in categorical]
    one_hot = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore")), categorical)])
    return {
        "HistGradientBoosting": make_pipeline(
            ColumnTransformer([("num", "passthrough", numeric),
                               ("cat", "passthrough", categorical)], verbose_feature_names_out=False)
            .set_output(transform="pandas"),
            HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=SEED)),
        "LogisticRegression": make_pipeline(one_hot, LogisticRegression(max_iter=2000)),
    }


def as_categorical(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.apply(lambda s: s if pd.api.types.is_numeric_dtype(s) else s.astype("category"))


def one_split(name: str, frame: pd.DataFrame, target: str, seed: int, work: Path) -> list[dict]:
    from sklearn.metrics import roc_auc_score

    splits = same_split(frame, target, seed)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = dw.train(frame, target=target, output=work, name=f"{name}-{seed}", quiet=True, seed=seed)
    seconds = time.perf_counter() - start
    test = model.metrics.test
    assert test.rows == len(splits.test)
    rows = [{"model": "deepwell (defaults)", "accuracy": test.model["accuracy"],
             "roc_auc": test.model["roc_auc"], "seconds": seconds,
             "epochs": model.metrics.training.epochs_run},
            {"model": "majority class", "accuracy": test.baseline["accuracy"], "roc_auc": 0.5, "seconds": 0.0}]
    fit_rows = as_categorical(pd.concat([splits.train, splits.validation], ignore_index=True))
    test_rows = as_categorical(splits.test)
    truth = test_rows[target].astype(str).to_numpy()
    for label, estimator in sklearn_models(frame, target).items():
        start = time.perf_counter()
        estimator.fit(fit_rows.drop(columns=target), fit_rows[target].astype(str))
        proba = estimator.predict_proba(test_rows.drop(columns=target))
        seconds = time.perf_counter() - start
        auc = roc_auc_score(truth, proba[:, 1]) if proba.shape[1] == 2 else \
            roc_auc_score(truth, proba, multi_class="ovr")
        rows.append({"model": label, "accuracy": float((estimator.classes_[proba.argmax(axis=1)] == truth).mean()),
                     "roc_auc": float(auc), "seconds": seconds})
    return rows


def accuracy_rows(work: Path) -> list[dict]:
    """Mean and spread over several seeds (each seed: a different split and initialisation)."""
    seeds = {"adult": [42, 1, 2]}
    summary = []
    for name, (frame, target) in datasets().items():
        runs = [dict(r, seed=seed) for seed in seeds.get(name, [42, 1, 2, 3, 4])
                for r in one_split(name, frame, target, seed, work)]
        table = pd.DataFrame(runs)
        for model_name, group in table.groupby("model", sort=False):
            summary.append({"dataset": name, "rows": len(frame), "model": model_name, "seeds": len(group),
                            "test_accuracy": float(group["accuracy"].mean()),
                            "test_accuracy_std": float(group["accuracy"].std(ddof=0)),
                            "test_accuracy_min": float(group["accuracy"].min()),
                            "test_roc_auc": float(group["roc_auc"].mean()),
                            "seconds": float(group["seconds"].mean()),
                            "epochs": float(group["epochs"].mean()) if "epochs" in group and
                            group["epochs"].notna().any() else None,
                            "per_seed_accuracy": group["accuracy"].round(4).tolist()})
        print(f"{name}: done", file=sys.stderr)
    return summary


def hand_written_loop(network, train: TensorData, validation: TensorData, epochs: int, batch_size: int,
                      lr: float, weight_decay: float) -> float:
    optimizer = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    for epoch in range(epochs):
        network.train()
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(train), batch_size):
            index = order[i:i + batch_size]
            loss = loss_fn(network({k: v[index] for k, v in train.inputs.items()}), train.target[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        network.eval()
        with torch.inference_mode():
            loss_fn(network(validation.inputs), validation.target).item()
    return time.perf_counter() - start


def overhead(work: Path, epochs: int = 10, repeats: int = 5) -> dict:
    """Same network, tensors, batch size and epochs: hand-written loop vs deepwell's Trainer."""
    from deepwell.models.network import TabularNetwork

    prepared = prepare(pd.read_csv(ADULT), "income", seed=SEED)
    config, splits = prepared.config, prepared.splits
    pre = fit_preprocessor(config, splits)
    train = TensorData(pre.transform(splits.train), pre.transform_target(splits.train))
    validation = TensorData(pre.transform(splits.validation), pre.transform_target(splits.validation))
    batch = int(config.training.batch_size)
    config.training.epochs, config.training.patience = epochs, epochs + 1

    def build():
        torch.manual_seed(0)
        return TabularNetwork(pre.encoder_specs(), config.model, len(pre.target.classes))

    hand, ours = [], []
    for repeat in range(repeats):
        hand.append(hand_written_loop(build(), train, validation, epochs, batch, config.training.learning_rate,
                                      config.training.weight_decay))
        callbacks = [EarlyStopping(config.training.patience), Checkpoint(work / f"overhead-{repeat}.safetensors")]
        trainer = Trainer(build(), config.task, config.training, metric_fn(pre.target), callbacks=callbacks)
        ours.append(trainer.fit(train, validation).seconds)
    components = per_epoch_extras(trainer, build(), validation, work)
    return {"epochs": epochs, "batch_size": batch, "train_rows": len(train), "repeats": repeats,
            "per_epoch_ms": {"epoch": 1000 * min(ours) / epochs, **components},
            "hand_written_seconds": hand, "deepwell_seconds": ours,
            "hand_written_best": min(hand), "deepwell_best": min(ours), "ratio": min(ours) / min(hand),
            "hand_written_median": statistics.median(hand), "deepwell_median": statistics.median(ours),
            "median_ratio": statistics.median(ours) / statistics.median(hand)}


def per_epoch_extras(trainer: Trainer, network, validation: TensorData, work: Path) -> dict[str, float]:
    """What deepwell does beyond a minimal loop, timed in isolation (ms, mean of 20): per epoch, and the
    weight-average update per step."""
    from deepwell.inference.network import network_outputs
    from deepwell.task import Task
    from deepwell.training.checkpoint import save_checkpoint
    from deepwell.training.trainer import WeightAverage

    def ms(action, n: int = 20) -> float:
        action()
        start = time.perf_counter()
        for _ in range(n):
            action()
        return 1000 * (time.perf_counter() - start) / n

    def plain_validation():
        network.eval()
        with torch.inference_mode():
            network(validation.inputs)

    outputs = network_outputs(network, validation.inputs, Task.BINARY, torch.device("cpu"))
    return {"plain_validation_forward": ms(plain_validation),
            "deepwell_validation_with_metrics": ms(lambda: trainer._validate(validation)),
            "metrics_only": ms(lambda: trainer.metric_fn(outputs, validation.target.numpy())),
            "checkpoint": ms(lambda: save_checkpoint(work / "timing.safetensors", trainer)),
            "weight_average_update_per_step": ms(WeightAverage(network, 100).update, n=200)}


def write_results(rows: list[dict], over: dict | None) -> None:
    RESULTS.mkdir(exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "python": platform.python_version(),
            "torch": torch.__version__, "deepwell": dw.__version__, "cpu_threads": torch.get_num_threads(),
            "machine": platform.machine()}
    (RESULTS / "tabular.json").write_text(json.dumps({"meta": meta, "accuracy": rows, "overhead": over},
                                                     indent=2) + "\n")
    lines = [f"# Tabular benchmark ({meta['date']}, {meta['cpu_threads']} CPU threads, torch {meta['torch']})", "",
             "Test accuracy on deepwell's seeded, stratified 70/15/15 split, mean ± std over seeds (each seed a "
             "different split and initialisation; every model sees the same splits). scikit-learn models fit on "
             "train + validation; deepwell trains on train and early-stops on validation. Wall time per fit.", "",
             "| dataset | rows | model | seeds | test accuracy | min | test ROC AUC | wall time (s) | epochs |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        epochs = f"{r['epochs']:.0f}" if r["epochs"] else ""
        lines.append(f"| {r['dataset']} | {r['rows']} | {r['model']} | {r['seeds']} | "
                     f"{r['test_accuracy']:.4f} ± {r['test_accuracy_std']:.4f} | {r['test_accuracy_min']:.4f} | "
                     f"{r['test_roc_auc']:.4f} | {r['seconds']:.2f} | {epochs} |")
    if over:
        lines += ["", f"## Training overhead on Adult ({over['train_rows']} training rows, batch "
                      f"{over['batch_size']}, {over['epochs']} epochs, {over['repeats']} interleaved repeats)", "",
                  "Best-of-N is the headline (timing noise only ever adds time); medians for reference.", "",
                  "| loop | best (s) | median (s) |", "|---|---:|---:|",
                  f"| hand-written PyTorch loop | {over['hand_written_best']:.2f} | "
                  f"{over['hand_written_median']:.2f} |",
                  f"| deepwell Trainer | {over['deepwell_best']:.2f} | {over['deepwell_median']:.2f} |",
                  f"| **ratio** | **{over['ratio']:.3f}×** (bar: ≤ 1.10×) | {over['median_ratio']:.3f}× |",
                  "", "Per epoch, timed in isolation (ms): " + ", ".join(
                      f"{k.replace('_', ' ')} {v:.3g}" for k, v in over["per_epoch_ms"].items()) + "."]
    (RESULTS / "tabular.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = accuracy_rows(work)
        over = overhead(work) if ADULT.exists() else None
    write_results(rows, over)


if __name__ == "__main__":
    main()
