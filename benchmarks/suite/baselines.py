"""Classical baselines for each kind of data, fitted on the train split and chosen on the validation split;
the chosen one's test score is the bar deepwell is held to.

- tables: linear (logistic / ridge) on imputed, scaled numbers and one-hot categories; histogram gradient
  boosting; random forest;
- text: TF-IDF of word 1–2-grams and character 2–5-grams → logistic regression or a linear SVM;
- images: pixels → logistic regression, or an RBF SVM (on PCA components keeping 95% of the variance);
- audio: log-mel statistics (mean, spread, extremes per band over the voiced frames) → logistic regression or
  an RBF SVM.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

CLASSIFICATION = "classification"


@dataclass
class BaselineResult:
    name: str
    validation: float  # accuracy, or RMSE for regression
    test: float
    seconds: float


def score(task: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if task == CLASSIFICATION:
        return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))
    return float(np.sqrt(np.mean((np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float)) ** 2)))


def best_baseline(frame: pd.DataFrame, target: str, task: str, kind: str) -> tuple[BaselineResult,
                                                                                    list[BaselineResult]]:
    """Every candidate of this kind fitted on train; the best on validation is returned first."""
    parts = {name: frame[frame["split"] == name] for name in ("train", "validation", "test")}
    features = FEATURES[kind]
    started = time.perf_counter()
    x = {name: features(part.drop(columns=[target, "split"]), fit=name == "train")
         for name, part in parts.items()} if kind in ("image", "audio") else None
    feature_seconds = time.perf_counter() - started
    results = []
    for name, make in CANDIDATES[kind](task).items():
        started = time.perf_counter()
        model = make(parts["train"].drop(columns=[target, "split"])) if kind == "table" else make()
        inputs = x or {n: p.drop(columns=[target, "split"]) for n, p in parts.items()}
        if kind == "text":
            inputs = {n: p.iloc[:, 0].astype(str) for n, p in inputs.items()}
        model.fit(inputs["train"], parts["train"][target])
        validation = score(task, parts["validation"][target], model.predict(inputs["validation"]))
        test = score(task, parts["test"][target], model.predict(inputs["test"]))
        results.append(BaselineResult(name, validation, test, time.perf_counter() - started + feature_seconds))
    better = (lambda r: -r.validation) if task == CLASSIFICATION else (lambda r: r.validation)
    return min(results, key=better), results


# --- candidates ------------------------------------------------------------------------------------------

def _table_preprocessor(x: pd.DataFrame):  # noqa: ANN202
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in x.columns if pd.api.types.is_numeric_dtype(x[c])]
    categorical = [c for c in x.columns if c not in numeric]
    return ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("categories", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                     OneHotEncoder(handle_unknown="ignore", min_frequency=3, sparse_output=False)),
         categorical)], sparse_threshold=0)


def _table(task: str) -> dict[str, Callable]:
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline

    if task == CLASSIFICATION:
        models = {"logistic regression": lambda: LogisticRegression(max_iter=3000),
                  "gradient boosting": lambda: HistGradientBoostingClassifier(random_state=0),
                  "random forest": lambda: RandomForestClassifier(300, random_state=0, n_jobs=-1)}
    else:
        models = {"ridge regression": lambda: RidgeCV(alphas=np.logspace(-3, 3, 13)),
                  "gradient boosting": lambda: HistGradientBoostingRegressor(random_state=0),
                  "random forest": lambda: RandomForestRegressor(300, random_state=0, n_jobs=-1)}
    return {name: (lambda x, m=model: make_pipeline(_table_preprocessor(x), m())) for name, model in models.items()}


def _text(task: str) -> dict[str, Callable]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.svm import LinearSVC

    def tfidf():  # noqa: ANN202
        return make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                          TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2))
    return {"TF-IDF + logistic regression": lambda: make_pipeline(tfidf(), LogisticRegression(C=10, max_iter=3000)),
            "TF-IDF + linear SVM": lambda: make_pipeline(tfidf(), LinearSVC(C=0.5))}


def _vectors(task: str) -> dict[str, Callable]:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return {"logistic regression": lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000)),
            "RBF SVM": lambda: make_pipeline(StandardScaler(), PCA(0.95, random_state=0), SVC(C=10))}


CANDIDATES: dict[str, Callable[[str], dict[str, Callable]]] = {
    "table": _table, "text": _text, "image": _vectors, "audio": _vectors}


# --- features for images and audio ----------------------------------------------------------------------

def pixels(x: pd.DataFrame, fit: bool = False) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(p).convert("L"), dtype=np.float32).ravel() / 255
                     for p in x["image"]])


def log_mel_statistics(x: pd.DataFrame, fit: bool = False, rate: int = 16_000, bands: int = 40) -> np.ndarray:
    """Per band over the frames within 40 dB of the loudest: mean, standard deviation, minimum, maximum."""
    import soundfile
    from scipy.signal import resample_poly

    filters = _mel_filters(rate, 512, bands)
    rows = []
    for path in x["audio"]:
        samples, source_rate = soundfile.read(path, dtype="float32", always_2d=True)
        samples = resample_poly(samples.mean(axis=1), rate, source_rate) if source_rate != rate else samples[:, 0]
        frames = np.lib.stride_tricks.sliding_window_view(np.pad(samples, (0, 512)), 512)[::160]
        power = np.abs(np.fft.rfft(frames * np.hanning(512), axis=1)) ** 2
        mel = 10 * np.log10(power @ filters.T + 1e-10)
        voiced = mel[mel.max(axis=1) > mel.max() - 40]
        rows.append(np.concatenate([voiced.mean(0), voiced.std(0), voiced.min(0), voiced.max(0)]))
    return np.stack(rows)


def _mel_filters(rate: int, n_fft: int, bands: int) -> np.ndarray:
    def mel(f):  # noqa: ANN001, ANN202
        return 2595 * np.log10(1 + f / 700)

    points = 700 * (10 ** (np.linspace(mel(0), mel(rate / 2), bands + 2) / 2595) - 1)
    bins = np.fft.rfftfreq(n_fft, 1 / rate)
    filters = np.zeros((bands, len(bins)))
    for i in range(bands):
        left, centre, right = points[i:i + 3]
        filters[i] = np.clip(np.minimum((bins - left) / (centre - left), (right - bins) / (right - centre)), 0, None)
    return filters


FEATURES: dict[str, Callable] = {"image": pixels, "audio": log_mel_statistics, "table": None, "text": None}
