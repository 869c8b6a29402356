"""Column type and task inference from values, not only dtypes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepwell.data.inference import infer_column_type, infer_task, profile_table

N = 60
rng = np.random.default_rng(0)


@pytest.mark.parametrize("values, expected", [
    (rng.normal(size=N), "number"),
    ([str(x) for x in rng.normal(size=N)], "number"),            # numbers stored as strings
    (rng.integers(0, 90, size=N), "number"),                     # repeating integers
    (["yes", "no"] * (N // 2), "binary"),
    ([True, False] * (N // 2), "binary"),
    ([0, 1, 1] * (N // 3), "binary"),
    (["red", "green", "blue"] * (N // 3), "category"),
    ([f"the quick brown fox number {i} jumps" for i in range(N)], "text"),
    (pd.date_range("2020-01-01", periods=N).astype(str), "datetime"),
    (pd.date_range("2020-01-01", periods=N), "datetime"),
    ([f"CUST-{i:05d}" for i in range(N)], "id"),                  # unique codes
    (np.arange(1000, 1000 + N), "id"),                           # consecutive integers
    ([None] * N, "empty"),
    (["", " "] * (N // 2), "empty"),
])
def test_infer_column_type(values, expected):
    kind, _ = infer_column_type(pd.Series(values, name="col"))
    assert kind == expected


def test_unique_floats_are_numbers_not_ids():
    kind, _ = infer_column_type(pd.Series(rng.normal(size=N), name="customer_id_score"))
    assert kind == "number"


def test_unique_integers_named_like_an_id_are_ids():
    kind, _ = infer_column_type(pd.Series(rng.permutation(10_000)[:N] * 7, name="user_id"))
    assert kind == "id"


def test_numeric_strings_with_junk_are_numbers_with_a_note():
    values = [str(x % 37) for x in range(100)] + ["n/a"]
    kind, note = infer_column_type(pd.Series(values, name="x"))
    assert kind == "number" and "1 non-numeric" in note


@pytest.mark.parametrize("values, task", [
    (["a", "b"] * 30, "binary"),
    ([0, 1] * 30, "binary"),
    (["x", "y", "z"] * 20, "multiclass"),
    ([1, 2, 3, 4] * 30, "multiclass"),
    (rng.normal(size=N), "regression"),
    (rng.integers(0, 1000, size=N), "regression"),
])
def test_infer_task(values, task):
    assert infer_task(pd.Series(values)) == task


def test_profile_marks_target_and_counts_missing():
    frame = pd.DataFrame({"a": [1.0, None, 3.0, 4.0], "y": ["p", "q", "p", "q"]})
    profiles = {p.name: p for p in profile_table(frame, target="y")}
    assert profiles["a"].missing == 1
    assert profiles["y"].note == "target (binary)"
