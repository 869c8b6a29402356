"""Every bad input gets a specific DeepwellError naming the file, column or row — and nothing saved is lost."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

import deepwell as dw
from deepwell.errors import ConfigError, DataError, DeepwellWarning, ModelFileError

FAST = {"epochs": 2, "seed": 0, "quiet": True}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 120
    x = rng.normal(size=n)
    return pd.DataFrame({"amount": x, "colour": rng.choice(["red", "blue", "green"], n),
                         "label": np.where(x + rng.normal(scale=0.5, size=n) > 0, "high", "low")})


@pytest.fixture(scope="module")
def model(table, tmp_path_factory) -> dw.Model:
    return dw.train(table, target="label", output=tmp_path_factory.mktemp("runs"), **FAST)


# --- files ---------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: file does not exist"):
        dw.train(tmp_path / "nope.csv", target="y")


@pytest.mark.parametrize("name, content, message", [
    ("data.xlsx", b"PK\x03\x04", r"data\.xlsx: unsupported file type '\.xlsx'.*\.csv"),
    ("empty.csv", b"", r"empty\.csv: file is empty"),
    ("broken.parquet", b"this is not parquet at all", r"broken\.parquet: cannot be read as parquet"),
    ("latin.csv", "name,y\nJos\xe9,1\nAna,0\n".encode("latin-1"), r"latin\.csv: not UTF-8"),
])
def test_unreadable_files_name_the_file_and_the_problem(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        dw.train(path, target="y")


def test_header_only_file(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("a,b,y\n")
    with pytest.raises(DataError, match=r"header\.csv: the table has no data rows"):
        dw.train(path, target="y")


# --- the target and the table ----------------------------------------------------------------
def test_missing_target_suggests_close_names(table):
    with pytest.raises(DataError, match=r"target column 'Lable' is not in the table\. Did you mean 'label'"):
        dw.train(table, target="Lable", **FAST)


def test_target_with_one_class(table):
    with pytest.raises(DataError, match=r"target column 'label' holds a single class \('low'\)"):
        dw.train(table.assign(label="low"), target="label", **FAST)


def test_non_numeric_regression_target(table):
    config = {"target": "label", "task": "regression"}
    with pytest.raises(DataError, match=r"regression, so the target must hold numbers.*row 0: '(high|low)'"):
        dw.train(table, config=config, **FAST)


def test_too_few_rows(table):
    with pytest.raises(DataError, match=r"12 labelled rows is too few.*70%/15%/15%"):
        dw.train(table.head(12), target="label", **FAST)


def test_all_empty_column(table):
    with pytest.raises(DataError, match=r"column 'notes' is empty in every row.*type: ignore"):
        dw.train(table.assign(notes=None), target="label", **FAST)


def test_all_empty_column_can_be_ignored(table, tmp_path):
    config = {"target": "label", "columns": {"notes": {"type": "ignore"}}}
    model = dw.train(table.assign(notes=None), config=config, output=tmp_path, **FAST)
    assert "notes" not in model.input_columns


def test_config_naming_an_unknown_column(table):
    with pytest.raises(ConfigError, match=r"'colour_code'.*Did you mean 'colour'"):
        dw.train(table, config={"target": "label", "columns": {"colour_code": {"type": "category"}}}, **FAST)


def test_invalid_config_value(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("target: y\nmodel:\n  hidden_layers: -1\n  colour: red\n")
    with pytest.raises(ConfigError, match=r"(?s)c\.yaml.*model\.hidden_layers.*model\.colour"):
        dw.Config.from_yaml(path)


def test_config_mistakes_name_the_line_the_value_and_the_fix(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("target: y\ntraining:\n  epocs: 10\n  learning_rate: ten\n"
                    "columns:\n  age:\n    type: number\n    on_bad_file: skip\n")
    with pytest.raises(ConfigError) as caught:
        dw.Config.from_yaml(path)
    message = str(caught.value)
    assert "training.epocs (line 3): unknown setting 'epocs'. Did you mean 'epochs'?" in message
    assert "training.learning_rate (line 4)" in message and "(got 'ten')" in message
    assert "columns.age.on_bad_file (line 8)" in message and "belongs in the top level of the config" in message


def test_a_free_text_target_is_refused_in_one_paragraph_naming_label_columns(tmp_path):
    rng = np.random.default_rng(0)
    words = np.array(["free", "win", "call", "now", "later", "home", "tea", "prize", "meet", "ok"])
    texts = [" ".join(rng.choice(words, 8)) + f" {i}" for i in range(400)]
    table = pd.DataFrame({"text": texts, "label": rng.choice(["ham", "spam"], 400)})
    with pytest.raises(DataError, match=r"'text' looks like free text \(400 distinct values in 400 rows\).*"
                                        r"Columns that look like labels: 'label' \(2 values\)") as caught:
        dw.train(table, target="text", output=tmp_path, **FAST)
    assert len(str(caught.value)) < 600
    assert not list(tmp_path.iterdir())  # no failed run folder left behind


def test_listing_shows_a_few_values_and_counts_the_rest():
    from deepwell.errors import listing

    assert listing(["a", "b", "c"], shown=2) == "'a', 'b' and 1 more"
    assert listing(range(3), quote=False) == "0, 1, 2"


# --- prediction time -------------------------------------------------------------------------
def test_missing_input_columns_are_named(model, table):
    with pytest.raises(DataError, match=r"lacks input column\(s\) the model needs: 'colour'"):
        model.predict(table.drop(columns="colour"))


def test_extra_columns_are_ignored_and_said_once(model, table):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = model.predict(table.assign(extra1=1, extra2="x"))
    notes = [w for w in caught if issubclass(w.category, DeepwellWarning)]
    assert len(notes) == 1 and "'extra1', 'extra2'" in str(notes[0].message)
    assert len(labels) == len(table)


def test_unseen_categories_use_the_unknown_bucket(model, table):
    rows = table.head(3).assign(colour=["purple", "teal", None])
    assert len(model.predict(rows)) == 3


def test_wrong_value_type_names_column_and_row(model, table):
    rows = table.head(4).astype({"amount": object})
    rows.loc[2, "amount"] = "twelve"
    with pytest.raises(DataError, match=r"Column 'amount' expects numbers.*row 2: 'twelve'"):
        model.predict(rows)


def test_a_wrong_value_in_a_csv_names_the_file_and_its_line(model, table, tmp_path):
    rows = table.head(4).astype({"amount": object})
    rows.loc[1, "amount"] = "twelve"
    path = tmp_path / "new.csv"
    rows.drop(columns="label").to_csv(path, index=False)
    with pytest.raises(DataError, match=r"new\.csv: Column 'amount' expects numbers.*line 3: 'twelve'"):
        model.predict(path)  # line 1 is the header, so the second row is line 3


def test_evaluate_needs_the_target(model, table):
    with pytest.raises(DataError, match=r"evaluation needs the target column 'label'"):
        model.evaluate(table.drop(columns="label"))


# --- damaged model folders, and nothing saved is lost ----------------------------------------
@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "weights.safetensors").unlink(), r"incomplete model folder, missing weights\.safetensors"),
    (lambda d: (d / "meta.json").write_text("{not json"), r"meta\.json: damaged JSON"),
    (lambda d: (d / "weights.safetensors").write_bytes(b"\x00" * 20), r"weights\.safetensors: damaged"),
    (lambda d: (d / "architecture.json").write_text(
        (d / "architecture.json").read_text().replace('"hidden_width": 256', '"hidden_width": 64')),
     r"weights do not match architecture\.json"),
    (lambda d: (d / "preprocessor.json").write_text('{"features": 3}'), r"preprocessor\.json or architecture"),
])
def test_damaged_model_folder(model, tmp_path, damage, message):
    folder = model.save(tmp_path / "m")
    damage(folder)
    with pytest.raises(ModelFileError, match=message):
        dw.load(folder)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(ModelFileError, match="not a deepwell model folder"):
        dw.load(tmp_path)
    with pytest.raises(ModelFileError, match="no such model"):
        dw.load(tmp_path / "absent")


def test_failed_save_keeps_the_previous_model(model, table, tmp_path, monkeypatch):
    folder = model.save(tmp_path / "m")
    before = model.predict_proba(table)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("deepwell.runs.model_files.save_file", broken)
    with pytest.raises(OSError):
        model.save(folder)
    np.testing.assert_array_equal(dw.load(folder).predict_proba(table), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging leftovers


def test_a_new_run_never_overwrites_an_old_one(table, tmp_path):
    first = dw.train(table, target="label", output=tmp_path, name="same", **FAST)
    second = dw.train(table, target="label", output=tmp_path, name="same", **FAST)
    assert first.run_dir != second.run_dir and (first.run_dir / "model" / "weights.safetensors").exists()
    shutil.rmtree(second.run_dir)
