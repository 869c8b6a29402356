"""Reading every supported format, and the three ways of splitting data."""

from __future__ import annotations

import pandas as pd
import pytest

from deepwell.config import SplitConfig
from deepwell.data.io import read_table, write_table
from deepwell.data.split import split_table
from deepwell.errors import DataError


@pytest.fixture()
def frame() -> pd.DataFrame:
    return pd.DataFrame({"x": range(100), "city": ["a", "b", "c", "d"] * 25, "y": ["p"] * 80 + ["q"] * 20})


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_formats_round_trip(frame, tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    write_table(frame, path)
    back = read_table(path)
    assert list(back.columns) == ["x", "city", "y"]
    assert back["x"].tolist() == list(range(100))
    assert back["city"].astype(str).tolist() == frame["city"].tolist()


def test_semicolon_csv_is_detected(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text("a;b;y\n1,5;x;0\n2,5;z;1\n")
    assert list(read_table(path).columns) == ["a", "b", "y"]


def test_fractions_are_seeded_and_stratified(frame):
    splits = split_table(frame, SplitConfig(), seed=3, stratify_by="y")
    assert splits.sizes() == {"train": 70, "validation": 15, "test": 15}
    assert (splits.test["y"] == "q").sum() == 3  # 20% of 15, exactly, by stratification
    again = split_table(frame, SplitConfig(), seed=3, stratify_by="y")
    assert splits.test["x"].tolist() == again.test["x"].tolist()
    other = split_table(frame, SplitConfig(), seed=4, stratify_by="y")
    assert splits.test["x"].tolist() != other.test["x"].tolist()
    seen = set(splits.train["x"]) | set(splits.validation["x"]) | set(splits.test["x"])
    assert len(seen) == 100


def test_split_column(frame):
    frame = frame.assign(part=["train"] * 60 + ["val"] * 20 + ["test"] * 20)
    splits = split_table(frame, SplitConfig(column="part"), seed=0, stratify_by="y")
    assert splits.sizes() == {"train": 60, "validation": 20, "test": 20}
    assert "part" not in splits.train.columns
    with pytest.raises(DataError, match=r"column 'part' must hold train, validation.*'holdout'"):
        split_table(frame.assign(part="holdout"), SplitConfig(column="part"), seed=0, stratify_by=None)


def test_separate_validation_and_test_files(frame, tmp_path):
    frame.iloc[:10].to_csv(tmp_path / "val.csv", index=False)
    frame.iloc[10:25].to_csv(tmp_path / "test.csv", index=False)
    config = SplitConfig(validation_file=tmp_path / "val.csv", test_file=tmp_path / "test.csv")
    splits = split_table(frame, config, seed=0, stratify_by="y")
    assert splits.sizes() == {"train": 100, "validation": 10, "test": 15}
    only_test = split_table(frame, SplitConfig(test_file=tmp_path / "test.csv"), seed=0, stratify_by="y")
    assert len(only_test.test) == 15 and len(only_test.train) + len(only_test.validation) == 100


def test_fractions_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        SplitConfig(train=0.8, validation=0.15, test=0.15)
