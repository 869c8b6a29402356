"""Preprocessing: fitted on training data only, saved as JSON, and identical after a round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from deepwell.config import ColumnConfig
from deepwell.errors import DataError
from deepwell.features.category import MISSING, UNKNOWN
from deepwell.features.pipeline import Preprocessor
from deepwell.features.target import TargetEncoder


@pytest.fixture()
def table() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 200
    return pd.DataFrame({
        "income": rng.lognormal(10, 1, size=n),                     # skewed → log-scaled
        "age": np.where(rng.random(n) < 0.1, np.nan, rng.integers(18, 90, n)),
        "member": rng.choice(["yes", "no"], n),
        "city": rng.choice(["paris", "rome", "oslo", "lima"], n),
        "review": rng.choice(["great product, works well", "broke after a day", "ok for the price"], n),
        "joined": pd.date_range("2019-01-01", periods=n, freq="37h").astype(str),
        "label": rng.choice(["churn", "stay", "upgrade"], n),
    })


COLUMNS = {"income": "number", "age": "number", "member": "binary", "city": "category", "review": "text",
           "joined": "datetime"}


def fit(table: pd.DataFrame) -> Preprocessor:
    columns = {name: ColumnConfig(type=kind) for name, kind in COLUMNS.items()}
    return Preprocessor.fit(table, columns, TargetEncoder("label", "multiclass"))


def test_round_trip_through_json_gives_identical_tensors(table):
    pre = fit(table)
    restored = Preprocessor.from_state(json.loads(pre.to_json()))
    a, b = pre.transform(table), restored.transform(table)
    assert a.keys() == b.keys() == {"numeric", "city", "review"}
    for key in a:
        assert torch.equal(a[key], b[key])
    assert torch.equal(pre.transform_target(table), restored.transform_target(table))


def test_numbers_are_standardised_with_missing_indicator(table):
    pre = fit(table)
    names = pre.numeric_names()
    numeric = pre.transform(table)["numeric"].numpy()
    age = numeric[:, names.index("age")]
    missing = numeric[:, names.index("age__missing")]
    assert missing.sum() == table["age"].isna().sum()
    assert abs(age[missing == 0].mean()) < 0.1 and abs(age[missing == 0].std() - 1) < 0.1
    assert np.all(age[missing == 1] == 0)
    assert "income__missing" not in names  # no indicator for a column that had no missing values
    income = pre.features[0]
    assert income.log  # heavily skewed positive numbers are log-scaled first


def test_statistics_come_from_the_training_rows_only(table):
    train, other = table.iloc[:100], table.iloc[100:].assign(age=1000.0)
    pre = fit(train)
    age = next(f for f in pre.features if f.name == "age")
    assert age.mean == pytest.approx(train["age"].mean())
    clipped = pre.transform(other)["numeric"][:, pre.numeric_names().index("age")]
    assert float(clipped.max()) <= 8.0  # extreme values are clipped, not exploded


def test_unseen_and_missing_categories_use_their_buckets(table):
    pre = fit(table)
    codes = pre.transform(pd.concat([table.head(1), table.head(2).assign(city=["tokyo", None])]))["city"]
    assert codes[0] >= 2 and codes[1] == UNKNOWN and codes[2] == MISSING


def test_text_becomes_padded_token_ids(table):
    pre = fit(table)
    tokens = pre.transform(table.head(3))["review"]
    words = next(f for f in pre.features if f.name == "review").word_width  # the longest training review, ≤ 64
    longest = pre.transform(table)["review"][:, :words]
    assert 1 < words < 64 and (longest[:, -1] != 0).any()  # some review fills it
    assert tokens.dtype == torch.int64 and tokens.shape == (3, words + words - 1)  # tokens, then token pairs
    assert (tokens[:, 0] > 1).all()  # first token known
    lengths = (tokens[:, :words] != 0).sum(dim=1)
    for row, length in enumerate(lengths.tolist()):  # padding after each review's tokens and pairs
        assert (tokens[row, length:words] == 0).all() and (tokens[row, words + length - 1:] == 0).all()


def test_datetime_is_expanded_and_binary_is_zero_one(table):
    pre = fit(table)
    names = pre.numeric_names()
    assert "joined__month_sin" in names and "joined__weekday_cos" in names
    member = pre.transform(table)["numeric"][:, names.index("member")].numpy()
    assert set(np.unique(member)) == {0.0, 1.0}
    assert (member == 1.0).sum() == (table["member"] == "yes").sum()  # "yes" is the positive level


def test_strict_transform_names_column_and_rows_of_wrong_values(table):
    pre = fit(table)
    bad = table.head(5).astype({"age": object})
    bad.loc[3, "age"] = "forty"
    with pytest.raises(DataError, match=r"Column 'age' expects numbers.*row 3: 'forty'"):
        pre.transform(bad, strict=True)
    bad_date = table.head(3).copy()
    bad_date.loc[1, "joined"] = "not a date"
    with pytest.raises(DataError, match=r"Column 'joined' expects dates"):
        pre.transform(bad_date, strict=True)


def test_target_encoder_keeps_label_types_and_refuses_unseen_classes():
    encoder = TargetEncoder("y", "multiclass")
    encoder.fit(pd.Series([3, 1, 2, 1]))
    assert encoder.classes == [1, 2, 3]
    assert list(encoder.decode(np.array([2, 0]))) == [3, 1]
    with pytest.raises(DataError, match="never saw"):
        encoder.transform(pd.Series([1, 7]))
