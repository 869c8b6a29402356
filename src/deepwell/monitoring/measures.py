"""What is measured per row to watch for drift: one or more `Measure`s per input column, and the predictions.

A number or a date is its own value, a category its level; a text gives its length in characters and words and
the share of its words seen in training; an image its size, brightness and contrast; a recording its duration
and loudness. The same `Measurer` turns a training table, a new table or served requests into these values, so
the reference and what is compared with it are always measured alike.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deepwell.features.base import keys_of

if TYPE_CHECKING:
    from deepwell.features.files import FileFeature
    from deepwell.features.pipeline import Preprocessor
    from deepwell.task import Task

PREDICTION, CONFIDENCE = "prediction", "confidence"
WORDS = re.compile(r"\w+", re.UNICODE)
VOCABULARY = 5000  # the most frequent training words a text's "known words" share is measured against


class MeasureKind(str, Enum):
    NUMBER = "number"  # compared by quantile bins (PSI) and the Kolmogorov–Smirnov test
    CATEGORY = "category"  # compared by level frequencies (PSI) and the chi-square test


@dataclass(frozen=True)
class Measure:
    name: str  # "age", "review:words", "photo:brightness", "prediction"
    column: str  # the input column it is measured on, or "prediction"
    kind: MeasureKind
    what: str  # for people: "words per text"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "column": self.column, "kind": self.kind.value, "what": self.what}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Measure:
        return cls(data["name"], data["column"], MeasureKind(data["kind"]), data["what"])


FILE_MEASURES = {
    "image": [("width", "width in pixels"), ("height", "height in pixels"),
              ("brightness", "mean pixel value (0–255)"), ("contrast", "pixel standard deviation")],
    "audio": [("seconds", "duration in seconds"), ("loudness_db", "loudness (RMS, dB below full scale)")],
}


def input_measures(preprocessor: Preprocessor) -> list[Measure]:
    """The measures of a model's input columns, in column order."""
    measures: list[Measure] = []
    for feature in _column_features(preprocessor):
        name, kind = feature.name, feature.type
        if kind == "number":
            measures.append(Measure(name, name, MeasureKind.NUMBER, "value"))
        elif kind == "datetime":
            measures.append(Measure(name, name, MeasureKind.NUMBER, "date, in years"))
        elif kind in ("category", "binary"):
            measures.append(Measure(name, name, MeasureKind.CATEGORY, "level"))
        elif kind == "text":
            measures += [Measure(f"{name}:characters", name, MeasureKind.NUMBER, "characters per text"),
                         Measure(f"{name}:words", name, MeasureKind.NUMBER, "words per text"),
                         Measure(f"{name}:known_words", name, MeasureKind.NUMBER,
                                 f"share of words among training's {VOCABULARY} most frequent")]
        elif kind in FILE_MEASURES:
            measures += [Measure(f"{name}:{m}", name, MeasureKind.NUMBER, what) for m, what in FILE_MEASURES[kind]]
    return measures


def prediction_measures(task: Task) -> list[Measure]:
    if task.is_regression:
        return [Measure(PREDICTION, PREDICTION, MeasureKind.NUMBER, "predicted value")]
    return [Measure(PREDICTION, PREDICTION, MeasureKind.CATEGORY, "predicted class"),
            Measure(CONFIDENCE, PREDICTION, MeasureKind.NUMBER, "probability of the predicted class")]


def word_vocabulary(texts: pd.Series, size: int = VOCABULARY) -> list[str]:
    """A text column's most frequent lower-cased words in training."""
    counts = pd.Series([w for text in texts.dropna().astype(str) for w in WORDS.findall(text.lower())],
                       dtype=object).value_counts()
    return counts.index[:size].tolist()


class Measurer:
    """Measures rows of a table: values per `Measure` (NaN or None where a row has no value)."""

    def __init__(self, preprocessor: Preprocessor, vocabularies: dict[str, list[str]]) -> None:
        self.preprocessor = preprocessor
        self.vocabularies = {column: set(words) for column, words in vocabularies.items()}
        self.measures = input_measures(preprocessor)

    def inputs(self, frame: pd.DataFrame, base_dir: Path | None = None) -> pd.DataFrame:
        """The input measures of `frame` (absent columns give no values: a drift check reports them)."""
        from deepwell.data.inference import parse_dates
        from deepwell.features.number import to_numbers

        out: dict[str, Any] = {}
        for feature in _column_features(self.preprocessor):
            name = feature.name
            if name not in frame.columns:
                continue
            values = frame[name]
            if feature.type == "number":
                out[name] = to_numbers(values, name, strict=False).to_numpy(float)
            elif feature.type == "datetime":
                dates = parse_dates(values)
                out[name] = (dates.dt.year + dates.dt.day_of_year / 366.0).to_numpy(float)
            elif feature.type in ("category", "binary"):
                out[name] = keys_of(values).to_numpy(object)
            elif feature.type == "text":
                out.update(self._text(name, values))
            elif feature.type in FILE_MEASURES:
                out.update(_files(feature, values, base_dir))
        return pd.DataFrame(out, index=range(len(frame)))

    def _text(self, name: str, values: pd.Series) -> dict[str, np.ndarray]:
        vocabulary = self.vocabularies.get(name, set())
        characters, words, known = [], [], []
        for value in values:
            if value is None or (isinstance(value, float) and np.isnan(value)):
                characters.append(np.nan), words.append(np.nan), known.append(np.nan)
                continue
            text = str(value)
            found = WORDS.findall(text.lower())
            characters.append(len(text))
            words.append(len(found))
            known.append(sum(w in vocabulary for w in found) / len(found) if found else np.nan)
        return {f"{name}:characters": np.array(characters, float), f"{name}:words": np.array(words, float),
                f"{name}:known_words": np.array(known, float)}


def measure_predictions(task: Task, predictions: Sequence[Any], probabilities: np.ndarray | None) -> pd.DataFrame:
    """The prediction measures from the predicted labels (or values) and, for classification, the
    [rows, classes] probabilities (`Predictions.predictions`, `.probabilities`; or what a request log kept)."""
    if task.is_regression:
        return pd.DataFrame({PREDICTION: np.asarray(predictions, float)})
    labels = [None if p is None else str(p) for p in predictions]
    confidence = np.asarray(probabilities, float).reshape(len(labels), -1).max(axis=1) if len(labels) else []
    return pd.DataFrame({PREDICTION: np.array(labels, dtype=object), CONFIDENCE: confidence})


def file_summary(feature: FileFeature, value: Any) -> dict[str, float]:
    """What a request log keeps of a file instead of its bytes: its size and its measures."""
    names = [m for m, _ in FILE_MEASURES[feature.type]]
    size = len(value) if isinstance(value, (bytes, bytearray)) else None
    return {"file_bytes": size, **dict(zip(names, _file_measures(feature, value), strict=True))}


def _column_features(preprocessor: Preprocessor):
    """One feature per input column (a text column's sentence embeddings read the same column)."""
    seen: set[str] = set()
    for feature in preprocessor.features:
        if feature.name not in seen:
            seen.add(feature.name)
            yield feature


def _files(feature: FileFeature, values: pd.Series, base_dir: Path | None) -> dict[str, np.ndarray]:
    from deepwell.edge.media import resolve_path

    rows = [_file_measures(feature, resolve_path(value, base_dir)) for value in values]
    names = [m for m, _ in FILE_MEASURES[feature.type]]
    return {f"{feature.name}:{m}": np.array([row[i] for row in rows], float) for i, m in enumerate(names)}


def _file_measures(feature: FileFeature, value: Any) -> tuple[float, ...]:
    """One file's measures (from its path, bytes, decoded array or logged summary); NaN for each when it is
    missing or cannot be read (a drift check counts those)."""
    from deepwell.data.media import LoadedFile

    names = [m for m, _ in FILE_MEASURES[feature.type]]
    blank = (np.nan,) * len(names)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return blank
    if isinstance(value, dict):  # a request log's `file_summary`
        return tuple(np.nan if value.get(m) is None else float(value[m]) for m in names)
    source = Path(value.source) if isinstance(value, LoadedFile) else value
    try:
        array = feature._decode(value)
        if feature.type == "image":
            width, height = _image_size(source, array)
            grey = array.astype(np.float32).mean(axis=-1)
            return float(width), float(height), float(grey.mean()), float(grey.std())
        wave = array.astype(np.float32) / 32767.0
        rms = float(np.sqrt(np.mean(np.square(wave)))) if wave.size else 0.0
        return _audio_seconds(source, feature), 20 * np.log10(max(rms, 1e-5))
    except Exception:
        return blank


def _image_size(source: Any, decoded: np.ndarray) -> tuple[int, int]:
    from PIL import Image

    if isinstance(source, np.ndarray):
        return source.shape[1], source.shape[0]
    if isinstance(source, (bytes, bytearray, Path)):
        with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as image:
            return image.size
    return decoded.shape[1], decoded.shape[0]


def _audio_seconds(source: Any, feature: FileFeature) -> float:
    import soundfile

    if isinstance(source, (bytes, bytearray, Path)):
        info = soundfile.info(source if isinstance(source, Path) else io.BytesIO(source))
        return float(info.frames / info.samplerate)
    if isinstance(source, np.ndarray):
        return float(len(source) / feature.audio.sample_rate)
    return float("nan")
