"""A reference learner for the fit diagnosis: what error does a simple, classical model reach on this data?

Without one, "the model removes little of the baseline's error" cannot tell a network that is too small from
data that is simply noisy (Adult's or diabetes' irreducible error), and a user is never told that a simple
model beats the network on their data. Fitted on the same training split and scored on the same validation
split, in seconds:
- table-like inputs only (numbers, categories, frozen embeddings): scikit-learn's gradient boosting;
- anything with text, images or audio: a linear model (logistic or ridge regression) on classical features of
  the same inputs — TF-IDF of the column's tokens and token n-grams, pixels, log-mel statistics (mean, spread
  and extremes per mel band) — beside the standardised numbers and one-hot categories; its regularisation is
  chosen by cross-validation on the training rows.
These are the learners the benchmark suite holds deepwell to. Inputs decoded batch by batch (file columns too
large for memory) and encoders being fine-tuned get no reference; the diagnosis then falls back to the
baseline-skill rule.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from deepwell.task import Task

TABULAR_KINDS = {"numeric", "vector", "embedding"}
TEXT_KINDS = {"bag", "text_cnn", "text_transformer"}
MEDIA_KINDS = {"image", "audio"}
MAX_ROWS = 50_000  # training rows the reference sees at most (seeded sample): it is a yardstick, not a model
MAX_PIXELS = 32  # images are average-pooled to at most this side first (pixels of larger images are redundant)


def reference_scores(specs: dict[str, dict[str, Any]], train_inputs: dict[str, Any], y_train: np.ndarray,
                     validation_inputs: dict[str, Any], y_validation: np.ndarray, task: Task, n_classes: int,
                     score: Any) -> dict[str, Any] | None:
    """Validation scores (`score(outputs, y)`, the task's metrics) of the reference on the same inputs, with its
    name under "model"; None when some input cannot be read by a classical learner."""
    if not specs or any(getattr(train_inputs[name], "lazy", False) for name in specs):
        return None
    kinds = {spec["kind"] for spec in specs.values()}
    if not kinds <= TABULAR_KINDS | TEXT_KINDS | MEDIA_KINDS:
        return None
    if len(y_train) > MAX_ROWS:
        keep = np.sort(np.random.default_rng(0).choice(len(y_train), MAX_ROWS, replace=False))
        train_inputs, y_train = {k: v[keep] for k, v in train_inputs.items()}, y_train[keep]
    if kinds <= TABULAR_KINDS:
        name, model, x_train, x_validation = _boosting(specs, train_inputs, validation_inputs, task)
    else:
        name, model, x_train, x_validation = _linear(specs, train_inputs, validation_inputs, task)
    with warnings.catch_warnings():  # scikit-learn's notes on coming changes of defaults we do not rely on
        warnings.simplefilter("ignore", FutureWarning)
        model.fit(x_train, y_train)
    if task.is_regression:
        outputs = model.predict(x_validation)
    else:  # probabilities for every class index, even those absent from the training sample
        outputs = np.zeros((x_validation.shape[0], n_classes))
        outputs[:, model.classes_.astype(int)] = model.predict_proba(x_validation)
    return {"model": name, **score(outputs, y_validation)}


# --- gradient boosting on table-like inputs ----------------------------------------------------------------
def _boosting(specs, train_inputs, validation_inputs, task: Task):  # noqa: ANN001, ANN202
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    x_train, categorical = _matrix(specs, train_inputs)
    x_validation, _ = _matrix(specs, validation_inputs)
    kind = HistGradientBoostingRegressor if task.is_regression else HistGradientBoostingClassifier
    model = kind(categorical_features=categorical or None, random_state=0)
    return "gradient boosting (scikit-learn HistGradientBoosting, defaults)", model, x_train, x_validation


def _matrix(specs: dict[str, dict[str, Any]], inputs: dict[str, Any]) -> tuple[np.ndarray, list[int]]:
    """One float matrix; category codes become single columns marked categorical (when they fit in 255 bins)."""
    columns, categorical = [], []
    for name, spec in specs.items():
        values = np.asarray(inputs[name])
        if spec["kind"] == "embedding":
            if spec["num_embeddings"] <= 255:
                categorical.append(sum(c.shape[1] for c in columns))
            columns.append(values.reshape(-1, 1).astype(np.float64))
        else:
            columns.append(values.reshape(len(values), -1).astype(np.float64))
    return np.concatenate(columns, axis=1), categorical


# --- a linear model on classical features --------------------------------------------------------------------
def _linear(specs, train_inputs, validation_inputs, task: Task):  # noqa: ANN001, ANN202
    from scipy import sparse
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV

    train_parts, validation_parts, names = [], [], []
    for name, spec in specs.items():
        fitted, described = _features(spec, np.asarray(train_inputs[name]))
        train_parts.append(fitted.train)
        validation_parts.append(fitted.apply(np.asarray(validation_inputs[name])))
        names.append(described)
    x_train = sparse.hstack(train_parts, format="csr")
    x_validation = sparse.hstack(validation_parts, format="csr")
    if task.is_regression:
        model, learner = RidgeCV(alphas=np.logspace(-3, 3, 13)), "ridge regression"
    else:
        # the regularisation is chosen by 3-fold cross-validation on the training rows: TF-IDF wants little,
        # thousands of pixels or mel statistics on a few hundred rows want much
        model = LogisticRegressionCV(Cs=[0.1, 1.0, 10.0], cv=3, max_iter=2000, scoring="neg_log_loss")
        learner = "logistic regression"
    what = " + ".join(dict.fromkeys(n for n in names if n))
    return f"{learner} on {what}", model, x_train, x_validation


class _Fitted:
    """Features learned on the training rows (`train`) and the same transformation for other rows."""

    def __init__(self, train, apply) -> None:  # noqa: ANN001
        self.train, self.apply = train, apply


def _features(spec: dict[str, Any], train: np.ndarray) -> tuple[_Fitted, str]:
    kind = spec["kind"]
    if kind in TEXT_KINDS:
        return _tfidf(spec, train), "TF-IDF of the tokens"
    if kind == "embedding":
        return _one_hot(spec, train), "one-hot categories"
    if kind == "image":
        return _standardised(_pooled_pixels(train), _pooled_pixels), "pixels"
    if kind == "audio":
        return _standardised(*_mel_statistics(spec, train)), "log-mel statistics"
    flat = lambda x: x.reshape(len(x), -1).astype(np.float64)  # noqa: E731
    return _standardised(flat(train), flat), "frozen embeddings" if kind == "vector" else "numbers"


def _tfidf(spec: dict[str, Any], train: np.ndarray) -> _Fitted:
    from sklearn.feature_extraction.text import TfidfTransformer

    width = int(spec["num_embeddings"])
    transformer = TfidfTransformer(sublinear_tf=True)
    fitted = transformer.fit_transform(_counts(train, width))
    return _Fitted(fitted, lambda x: transformer.transform(_counts(x, width)))


def _counts(tokens: np.ndarray, width: int):  # noqa: ANN202
    """Token (and n-gram) ids per row → a sparse count matrix; id 0 is padding and left out."""
    from scipy import sparse

    rows = np.repeat(np.arange(len(tokens)), tokens.shape[1])
    ids = tokens.ravel().astype(np.int64)
    keep = ids > 0
    matrix = sparse.csr_matrix((np.ones(int(keep.sum())), (rows[keep], ids[keep])), shape=(len(tokens), width))
    matrix.sum_duplicates()
    return matrix


def _one_hot(spec: dict[str, Any], train: np.ndarray) -> _Fitted:
    from scipy import sparse

    width = int(spec["num_embeddings"])

    def encode(codes: np.ndarray):  # noqa: ANN202
        codes = codes.reshape(-1).astype(np.int64)
        return sparse.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), width))
    return _Fitted(encode(train), encode)


def _standardised(train: np.ndarray, transform) -> _Fitted:  # noqa: ANN001
    from scipy import sparse

    mean, std = train.mean(axis=0), train.std(axis=0)
    std[std < 1e-12] = 1.0
    return _Fitted(sparse.csr_matrix((train - mean) / std),
                   lambda x: sparse.csr_matrix((transform(x) - mean) / std))


def _pooled_pixels(images: np.ndarray) -> np.ndarray:
    """[rows, channels, h, w] → average-pooled to at most MAX_PIXELS per side, flattened, in [0, 1] units."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    factor = max(1, -(-max(x.shape[-2:]) // MAX_PIXELS))
    if factor > 1:
        x = torch.nn.functional.avg_pool2d(x, factor, ceil_mode=True)
    return (x.flatten(1) / (255.0 if images.dtype == np.uint8 else 1.0)).numpy().astype(np.float64)


def _mel_statistics(spec: dict[str, Any], train: np.ndarray):  # noqa: ANN202
    """Per mel band over the frames within 40 dB of the clip's loudest: mean, spread, minimum, maximum."""
    import torch

    from deepwell.models.audio import LogMel

    log_mel = LogMel(spec["spectrogram"])

    def statistics(waves: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, len(waves), 256):
                mel = log_mel(torch.from_numpy(waves[start:start + 256])).transpose(1, 2)  # [rows, frames, bands]
                loud = mel.amax(dim=2)
                voiced = (loud > loud.amax(dim=1, keepdim=True) - 40 / (10 / np.log(10))).unsqueeze(-1)
                count = voiced.sum(dim=1).clamp_min(1)
                mean = (mel * voiced).sum(dim=1) / count
                spread = (((mel - mean.unsqueeze(1)) ** 2) * voiced).sum(dim=1).div(count).sqrt()
                low = mel.masked_fill(~voiced, float("inf")).amin(dim=1)
                high = mel.masked_fill(~voiced, float("-inf")).amax(dim=1)
                out.append(torch.cat([mean, spread, low, high], dim=1).numpy())
        return np.concatenate(out).astype(np.float64)
    return statistics(train), statistics
