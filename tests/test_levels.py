"""A number's levels: a number column whose few values repeat is also embedded value by value (features/levels.py),
decided once from the data (`levels: auto`), saved with the model and applied alike by the edge runtime."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import deepwell as dw
from deepwell.config import ColumnConfig
from deepwell.data.inference import repeats_as_levels
from deepwell.edge.values import value_key
from deepwell.features.category import MISSING, UNKNOWN
from deepwell.features.pipeline import Preprocessor
from deepwell.features.target import TargetEncoder
from deepwell.pipeline.prepare import prepare

QUIET = {"seed": 0, "quiet": True, "track": False}


def coded_table(rows: int = 900, codes: int = 24, seed: int = 0) -> pd.DataFrame:
    """`rate` takes 24 values, each standing for a site; the label is which group the site belongs to, which no
    smooth function of the rate gives (neighbouring rates belong to different groups). `noise` is continuous."""
    rng = np.random.default_rng(seed)
    rates = np.round(np.sort(rng.uniform(0.01, 0.6, codes)), 4)
    group = rng.permutation(np.arange(codes) % 3)
    site = rng.integers(0, codes, rows)
    return pd.DataFrame({"rate": rates[site], "noise": rng.normal(size=rows),
                         "group": np.array(["a", "b", "c"])[group[site]]})


@pytest.mark.parametrize("values, repeats, expected", [
    (np.repeat([0.0678, 0.5333, 0.2537, 0.1], 10), 5, True),   # four rates, ten rows each
    (np.random.default_rng(0).normal(size=200), 5, False),       # continuous: every value once
    (np.repeat(np.arange(40), 4), 5, False),                     # values repeat, but less than 5 times on average
    (np.repeat([1.0, 2.0], 50), 5, False),                       # two values: a binary column
    (np.repeat([0.0678, 0.5333, 0.2537, 0.1], 10), 0, False),    # data.level_repeats: 0 turns it off
    (["3", "3.0", 3, 4.0, "4", 5, 5, 5, None, "x"] * 5, 5, True),  # read as numbers: 3, 4 and 5
])
def test_a_number_is_given_levels_when_its_few_values_repeat(values, repeats, expected):
    assert repeats_as_levels(pd.Series(values, dtype=object), repeats, 1000) is expected


def test_levels_only_where_the_values_tell_more_than_their_size():
    """The screen: per-value means against quantile-bin means, out of fold. A label that follows the number's size
    (a threshold) gains nothing from its levels; a label that follows which value it is does."""
    from deepwell.data.inference import levels_predict_better

    rng = np.random.default_rng(3)
    x = rng.integers(0, 40, 2000).astype(float)
    by_size = (x + rng.normal(0, 3, x.size) > 20).astype(float)[:, None]
    by_value = (rng.permutation(40)[x.astype(int)] % 2).astype(float)[:, None]
    assert not levels_predict_better(x, np.hstack([by_size, 1 - by_size]), seed=0)
    assert levels_predict_better(x, np.hstack([by_value, 1 - by_value]), seed=0)
    assert not levels_predict_better(x, rng.normal(size=(x.size, 1)), seed=0)  # noise: levels only fit it


def test_levels_are_resolved_once_and_written_into_the_config():
    table = coded_table()
    prepared = prepare(table, "group")
    assert prepared.config.columns["rate"].levels is True and prepared.config.columns["noise"].levels is False
    assert yaml.safe_load(prepared.config.to_yaml())["columns"]["rate"]["levels"] is True
    kept = prepare(table, "group", config={"columns": {"rate": {"type": "number", "levels": False}}})
    assert kept.config.columns["rate"].levels is False
    off = prepare(table, "group", config={"data": {"level_repeats": 0}})
    assert off.config.columns["rate"].levels is False


def test_levels_key_values_as_numbers_and_survive_a_round_trip():
    train = pd.DataFrame({"rate": [0.25, 0.25, 0.5, 0.5, 3.0, 3.0, 7.0], "y": list("aabbaab")})
    columns = {"rate": ColumnConfig(type="number", levels=True)}
    pre = Preprocessor.fit(train, columns, TargetEncoder("y", "binary"))
    assert [f.key for f in pre.features] == ["rate", "rate#levels"]
    levels = pre.features[1]
    assert sorted(levels.vocabulary) == ["0.25", "0.5", "3"]  # 7.0 is seen once: min_frequency 2
    new = pd.Series(["3", 3, 3.0, "0.50", 7.0, None, 0.3], dtype=object)
    ids = levels.transform(new)
    assert ids[0] == ids[1] == ids[2] == levels._lookup()["3"] and ids[3] == levels._lookup()["0.5"]
    assert list(ids[4:]) == [UNKNOWN, MISSING, UNKNOWN]
    restored = Preprocessor.from_state(json.loads(pre.to_json()))
    frame = pd.DataFrame({"rate": new})
    a, b = pre.transform(frame), restored.transform(frame)
    assert a.keys() == b.keys() == {"numeric", "rate#levels"}
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_levels_learn_what_the_number_alone_cannot():
    """Seeded: the same network and epochs, with and without the rate's levels (scored by the run's own scoring)."""
    from deepwell.pipeline.fit import fit
    from deepwell.pipeline.score import score

    scores = {}
    for repeats in (5, 0):
        prepared = prepare(coded_table(), "group", config={"data": {"level_repeats": repeats}}, epochs=15, seed=0,
                           preset="fast")
        fitted = fit(prepared.config, prepared.splits)
        scores[repeats] = score(fitted, prepared.splits).metrics.test.model["accuracy"]
    assert scores[5] >= 0.95 and scores[5] > scores[0] + 0.1, scores


def test_the_edge_runtime_and_the_explanations_take_the_levels_as_part_of_their_column(tmp_path):
    """Column names with a '.' (torch refuses one in a module name) train, save, export and explain too."""
    pytest.importorskip("onnxruntime")
    from deepwell import edge
    from deepwell.edge.values import Table
    from deepwell.export.folder import export_model

    table = coded_table(rows=400).rename(columns={"rate": "site.rate"})
    table["kind.of"] = np.where(table["noise"] > 0, "high", "low")
    model = dw.train(table, "group", output=tmp_path / "runs", epochs=2, preset="fast", **QUIET)
    assert {f.key for f in model.preprocessor.features} == {"site.rate", "site.rate#levels", "noise", "kind.of"}
    model = dw.load(model.run_dir)
    export_model(model, tmp_path / "export", table.tail(100))
    rows = table.drop(columns="group").head(6).astype(object)
    rows.loc[:2, "site.rate"] = [str(rows.loc[0, "site.rate"]), 0.999, None]  # a string, an unseen value, missing
    expected = model.predict_proba(rows)
    got = edge.load(tmp_path / "export").predict(Table({c: rows[c].tolist() for c in rows}, len(rows), "rows"))
    np.testing.assert_allclose(got.outputs, expected, atol=1e-4)
    explained = model.explain(table.head(20), importance=False)
    a = explained.attributions
    assert a.columns == ["site.rate", "noise", "kind.of"]
    assert a.baselines["site.rate"].endswith("its levels: an unseen category")
    np.testing.assert_allclose(a.values.sum(axis=1), np.asarray(a.output) - np.asarray(a.baseline_output),
                               atol=0.005)  # completeness: the levels' share is counted in the rate's column


def test_a_streamed_table_decides_levels_on_its_head_and_counts_them_over_its_training_rows(tmp_path):
    from deepwell.data.stream import TRAIN
    from deepwell.pipeline.fit import fit_preprocessor
    from deepwell.pipeline.streaming import split_of

    coded_table(rows=3000).to_parquet(tmp_path / "rows.parquet", index=False)
    config = {"data": {"streaming": "always", "batch_rows": 1000, "sample_rows": 1000}}
    prepared = prepare(tmp_path / "rows.parquet", "group", config)
    assert prepared.config.columns["rate"].levels is True and prepared.config.columns["noise"].levels is False
    streamed = fit_preprocessor(prepared.config, prepared.splits, prepared.stream)
    whole = pd.read_parquet(tmp_path / "rows.parquet")
    train = whole[split_of(whole, prepared.config)[0] == TRAIN]
    counts = train["rate"].map(value_key).value_counts()
    levels = next(f for f in streamed.features if f.key == "rate#levels")
    assert sorted(levels.vocabulary) == sorted(counts[counts >= 2].index)
