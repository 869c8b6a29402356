"""Fitting from summaries merged over batches gives the state of one fit over all rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepwell.config import ColumnConfig
from deepwell.features.binary import BinaryFeature
from deepwell.features.category import CategoryFeature
from deepwell.features.datetime import DatetimeFeature
from deepwell.features.number import NumberFeature
from deepwell.features.summaries import Moments, merge
from deepwell.features.target import TargetEncoder


def batched(feature, values: pd.Series, size: int):
    summary = None
    for start in range(0, len(values), size):
        part = feature.summarise(values.iloc[start:start + size])
        summary = part if summary is None else summary.merge(part)
    feature.fit_summary(summary)
    return feature


@pytest.mark.parametrize("sizes", [(1, 500), (250, 250), (7, 3, 490)])
def test_merged_moments_equal_the_moments_of_all_values(sizes):
    rng = np.random.default_rng(0)
    values = np.exp(rng.normal(2, 1.5, sum(sizes)))  # skewed, so the third moment matters
    values[::17] = np.nan
    parts, start = [], 0
    for size in sizes:
        parts.append(Moments.of(values[start:start + size]))
        start += size
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    present = pd.Series(values).dropna()
    assert merged.count == len(present) and merged.missing == int(np.isnan(values).sum())
    assert merged.mean == pytest.approx(present.mean(), rel=1e-12)
    assert merged.std == pytest.approx(present.std(ddof=0), rel=1e-12)
    assert merged.skew == pytest.approx(present.skew(), rel=1e-9)
    assert merged.minimum == present.min()


def test_moments_of_nothing_and_of_a_constant():
    empty = Moments.of(np.array([np.nan, np.nan]))
    assert (empty.count, empty.missing, empty.std, empty.skew) == (0, 2, 0.0, 0.0)
    assert Moments.of(np.full(10, 3.0)).skew == 0.0
    assert empty.merge(Moments.of(np.array([1.0, 2.0]))).mean == 1.5


def test_number_feature_fitted_in_batches_equals_one_fit():
    rng = np.random.default_rng(1)
    values = pd.Series(np.round(np.exp(rng.normal(3, 2, 3000)), 2)).astype(object)
    values[::11] = None
    values[5] = "12.5"  # a number written as text
    whole, parts = NumberFeature("x", ColumnConfig(type="number")), NumberFeature("x", ColumnConfig(type="number"))
    whole.fit(values)
    batched(parts, values, 128)
    assert whole.log and parts.log and whole.indicator and parts.indicator
    assert parts.mean == pytest.approx(whole.mean, rel=1e-12)
    assert parts.std == pytest.approx(whole.std, rel=1e-12)


def test_category_binary_and_date_features_fitted_in_batches_equal_one_fit():
    rng = np.random.default_rng(2)
    cities = pd.Series(rng.choice(["Oslo", "Lima", "Pune", "Kyiv", "Rare"], 2000, p=[.4, .3, .2, .0995, .0005]))
    cities[::13] = None
    answers = pd.Series(rng.choice(["yes", "no", None], 2000))
    dates = pd.Series(pd.date_range("2001-01-01", periods=2000, freq="37h").astype(str))
    for feature_type, values in (("category", cities), ("binary", answers), ("datetime", dates)):
        cls = {"category": CategoryFeature, "binary": BinaryFeature, "datetime": DatetimeFeature}[feature_type]
        whole, parts = cls("c", ColumnConfig(type=feature_type)), cls("c", ColumnConfig(type=feature_type))
        whole.fit(values)
        batched(parts, values, 300)
        state, merged = whole.get_state(), parts.get_state()
        assert state.keys() == merged.keys()
        for key, value in state.items():
            assert merged[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key


def test_target_classes_and_moments_from_batches():
    labels = pd.Series([3, 1, 2, 1, 3, 2, 10] * 50)
    whole, parts = TargetEncoder("y", "multiclass"), TargetEncoder("y", "multiclass")
    whole.fit(labels)
    batched(parts, labels, 4)
    assert parts.classes == whole.classes == [1, 2, 3, 10]
    values = pd.Series(np.linspace(-5, 20, 999))
    whole, parts = TargetEncoder("y", "regression"), TargetEncoder("y", "regression")
    whole.fit(values)
    batched(parts, values, 100)
    assert (parts.mean, parts.std) == pytest.approx((whole.mean, whole.std), rel=1e-12)


def test_merge_of_feature_summaries_by_key():
    a = {"x": Moments.of(np.array([1.0, 2.0]))}
    b = {"x": Moments.of(np.array([3.0])), "y": Moments.of(np.array([5.0]))}
    merged = merge(a, b)
    assert merged["x"].count == 3 and merged["x"].mean == 2.0 and merged["y"].mean == 5.0
