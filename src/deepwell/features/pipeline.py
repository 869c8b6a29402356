"""The Preprocessor: every input column's feature plus the target, fitted on the training split only.

`transform` turns a table into the network's input: {"numeric": float32 [rows, width], <column>: array}
for columns with their own encoder. Tensors are built once per table, never per batch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepwell.config import ColumnConfig
from deepwell.errors import DataError, listing, warn
from deepwell.features.audio import AudioFeature
from deepwell.features.base import Feature
from deepwell.features.binary import BinaryFeature
from deepwell.features.category import CategoryFeature
from deepwell.features.datetime import DatetimeFeature
from deepwell.features.image import ImageFeature
from deepwell.features.levels import LEVELS_SUFFIX, NumberLevelsFeature
from deepwell.features.number import NumberFeature
from deepwell.features.target import TargetEncoder
from deepwell.features.text import TextFeature

FEATURE_TYPES: dict[str, type[Feature]] = {
    cls.type: cls for cls in (NumberFeature, BinaryFeature, CategoryFeature, TextFeature, DatetimeFeature,
                              ImageFeature, AudioFeature)
}
NUMERIC_BLOCK = "numeric"
STATE_VERSION = 1


def make_feature(name: str, options: ColumnConfig, key: str | None = None) -> Feature:
    """The feature class for a column's type (text with a pretrained encoder has its own; a number's levels are
    keyed `<column>#levels`)."""
    if key is not None and key.endswith(LEVELS_SUFFIX):
        return NumberLevelsFeature(name, options, key)
    pretrained = {"text": options.text, "image": options.image, "audio": options.audio}.get(options.type)
    if pretrained is not None and pretrained.pretrained:
        from deepwell.features import pretrained as module
        kind = {"text": module.PretrainedTextFeature, "image": module.PretrainedImageFeature,
                "audio": module.PretrainedAudioFeature}[options.type]
        return kind(name, options, key)
    return FEATURE_TYPES[options.type](name, options, key)


SENTENCE_SUFFIX = "#sentence"  # the network input of a text column's frozen sentence embeddings


def column_features(name: str, options: ColumnConfig) -> list[Feature]:
    """A column's features: one; for text with a sentence encoder also its frozen embeddings beside it, for a
    number with levels also its values as categories."""
    features = [make_feature(name, options)]
    if options.type == "number" and options.levels is True:
        features.append(make_feature(name, options, key=name + LEVELS_SUFFIX))
    text = options.text
    if options.type == "text" and text is not None and not text.pretrained \
            and text.sentence_encoder not in ("auto", "none"):
        sentence = options.model_copy(deep=True)
        sentence.text.pretrained, sentence.text.fine_tune = text.sentence_encoder, "frozen"
        features.append(make_feature(name, sentence, key=name + SENTENCE_SUFFIX))
    return features


TARGET_KEY = "__target__"  # the target's entry among streamed summaries


def unfitted_features(columns: dict[str, ColumnConfig]) -> list[Feature]:
    """Every input column's features, in column order, before fitting."""
    features = [feature for name, options in columns.items() if options.type in FEATURE_TYPES
                for feature in column_features(name, options)]
    if not features:
        raise DataError("No usable input columns: every column is the target, an ID, or ignored.")
    return features


EDGE_ROWS = 200_000  # training rows (a seeded sample beyond) whose quantiles give the numbers' bin edges


class Preprocessor:
    def __init__(self, features: list[Feature], target: TargetEncoder,
                 numeric_edges: list[list[float]] | None = None) -> None:
        self.features = features
        self.target = target
        self.numeric_edges = numeric_edges  # per numeric input, training quantiles (piecewise-linear encoding)

    @classmethod
    def fit(cls, train: pd.DataFrame, columns: dict[str, ColumnConfig], target: TargetEncoder,
            summaries: dict[str, Any] | None = None) -> Preprocessor:
        """Every feature and the target fitted on the training rows. `summaries` (feature key → what its
        `summarise` gave, merged over a streamed table's batches; TARGET_KEY for the target) replace `train`
        for the features that fit from one; the others, and the numbers' bin edges, fit on `train` (then a
        sample of the training rows)."""
        features = unfitted_features(columns)
        for feature in features:
            summary = (summaries or {}).get(feature.key)
            if summary is not None:
                feature.fit_summary(summary)
            else:
                feature.fit(train[feature.name])
        if summaries and TARGET_KEY in summaries:
            target.fit_summary(summaries[TARGET_KEY])
        else:
            target.fit(train[target.name])
        preprocessor = cls(features, target)
        preprocessor.numeric_edges = preprocessor._numeric_edges(train)
        return preprocessor

    def _numeric_edges(self, train: pd.DataFrame) -> list[list[float]] | None:
        from deepwell.models.encoders import quantile_edges

        numeric = [f for f in self.features if f.block == NUMERIC_BLOCK]
        if not numeric:
            return None
        rows = train if len(train) <= EDGE_ROWS else train.sample(EDGE_ROWS, random_state=0)
        return quantile_edges(np.concatenate([f.transform(rows[f.name]) for f in numeric], axis=1))

    @property
    def input_columns(self) -> list[str]:
        return list(dict.fromkeys(f.name for f in self.features))

    def numeric_names(self) -> list[str]:
        return [name for f in self.features if f.block == NUMERIC_BLOCK for name in f.output_names()]

    def check_columns(self, frame: pd.DataFrame, source: str = "data") -> None:
        """Missing input columns are an error; extra ones are ignored, said once."""
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            raise DataError(f"{source} lacks input column(s) the model needs: {listing(missing)}. "
                            f"The model was trained on: {listing(self.input_columns)}.")
        extra = [c for c in frame.columns if c not in self.input_columns and c != self.target.name]
        if extra:
            shown = ", ".join(map(repr, extra[:10])) + (" …" if len(extra) > 10 else "")
            warn(f"{source}: ignoring {len(extra)} column(s) the model does not use: {shown}.")

    def transform(self, frame: pd.DataFrame, strict: bool = False, errors: dict[Any, str] | None = None,
                  base_dir: Path | None = None) -> dict[str, torch.Tensor]:
        """Network inputs for every row. Files that cannot be read raise, unless `errors` is given: then
        their rows get zeros and `errors[row index]` says why (prediction reports them per row)."""
        inputs: dict[str, torch.Tensor] = {}
        numeric = [f.transform(frame[f.name], strict) for f in self.features if f.block == NUMERIC_BLOCK]
        if numeric:
            inputs[NUMERIC_BLOCK] = torch.from_numpy(np.concatenate(numeric, axis=1))
        for feature in self.features:
            if feature.block == NUMERIC_BLOCK:
                continue
            if getattr(feature, "reads_files", False):
                array = feature.transform(frame[feature.name], strict, errors=errors, base_dir=base_dir)
            else:
                array = feature.transform(frame[feature.name], strict)
            inputs[feature.key] = torch.from_numpy(array) if isinstance(array, np.ndarray) else array
        return inputs

    def transform_target(self, frame: pd.DataFrame) -> torch.Tensor:
        return torch.from_numpy(np.array(self.target.transform(frame[self.target.name])))

    def encoder_specs(self) -> dict[str, dict[str, Any]]:
        specs: dict[str, dict[str, Any]] = {}
        width = len(self.numeric_names())
        if width:
            specs[NUMERIC_BLOCK] = {"kind": "numeric", "width": width,
                                    **({"edges": self.numeric_edges} if self.numeric_edges else {})}
        for feature in self.features:
            if feature.block != NUMERIC_BLOCK:
                specs[feature.key] = feature.encoder_spec()
        return specs

    def state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "target": self.target.state(),
                **({"numeric_edges": self.numeric_edges} if self.numeric_edges else {}),
                "features": [{"name": f.name, **({"key": f.key} if f.key != f.name else {}), **f.state()}
                             for f in self.features]}

    def to_json(self) -> str:
        return json.dumps(self.state(), indent=1, ensure_ascii=False)

    def save_assets(self, folder: Path) -> None:
        """Files some features need at prediction time (e.g. a pretrained encoder), under folder/<column>/."""
        for feature in self.features:
            if hasattr(feature, "save_assets"):
                feature.save_assets(folder / _asset_folder(feature.key))

    def attach_assets(self, folder: Path) -> None:
        for feature in self.features:
            if hasattr(feature, "attach_assets"):
                feature.attach_assets(folder / _asset_folder(feature.key))

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Preprocessor:
        features = []
        for item in state["features"]:
            feature = make_feature(item["name"], ColumnConfig.model_validate(item["options"]), item.get("key"))
            feature.set_state(item)
            features.append(feature)
        return cls(features, TargetEncoder.from_state(state["target"]), state.get("numeric_edges"))


def _asset_folder(key: str) -> str:
    return key.replace(SENTENCE_SUFFIX, "__sentence")
