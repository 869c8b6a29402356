"""The Python API end to end on real tables: train → evaluate → predict → save → load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import deepwell as dw
from conftest import FAST


def test_binary_classification_on_breast_cancer_beats_baseline(breast_cancer_csv, tmp_path):
    model = dw.train(breast_cancer_csv, target="diagnosis", output=tmp_path, quiet=True, **FAST)
    test = model.metrics.test
    assert model.task == "binary"
    assert test.model["accuracy"] > 0.9
    assert test.model["accuracy"] > test.baseline["accuracy"] + 0.2
    assert test.baseline["roc_auc"] == 0.5
    assert set(model.classes_) == {"benign", "malignant"}
    saved = json.loads((model.run_dir / "metrics.json").read_text())
    assert saved["test"]["model"]["accuracy"] == test.model["accuracy"]


def test_multiclass_on_wine_dataframe(wine_frame, tmp_path):
    model = dw.train(wine_frame, target="cultivar", output=tmp_path, quiet=True, epochs=15, seed=0)
    assert model.task == "multiclass"
    proba = model.predict_proba(wine_frame.head(10))
    assert proba.shape == (10, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    labels = model.predict(wine_frame.head(10))
    assert list(labels) == [model.classes_[i] for i in proba.argmax(axis=1)]
    assert model.metrics.test.model["accuracy"] > 0.85


def test_regression_on_diabetes_reports_units_of_target(diabetes_frame, tmp_path):
    model = dw.train(diabetes_frame, target="progression", output=tmp_path, quiet=True, epochs=30, seed=0)
    assert model.task == "regression"
    test = model.metrics.test
    assert test.model["rmse"] < test.baseline["rmse"]
    assert test.model["r2"] > 0.2
    predictions = model.predict(diabetes_frame.head(20))
    assert 25 < predictions.mean() < 350  # the target's own scale, not standardised
    with pytest.raises(dw.DataError, match="regression"):
        model.predict_proba(diabetes_frame.head(2))


def test_describe_returns_one_row_per_column(adult_csv):
    profile = dw.describe(adult_csv, target="income")
    assert list(profile["name"]) == list(pd.read_csv(adult_csv, nrows=1).columns)
    kinds = dict(zip(profile["name"], profile["type"], strict=True))
    assert kinds["age"] == "number" and kinds["workclass"] == "category" and kinds["sex"] == "binary"
    assert profile.set_index("name").loc["workclass", "missing"] > 0


def test_predict_accepts_records_and_files(breast_cancer_csv, tmp_path):
    model = dw.train(breast_cancer_csv, target="diagnosis", output=tmp_path, quiet=True, **FAST)
    rows = pd.read_csv(breast_cancer_csv).drop(columns="diagnosis").head(3)
    from_frame = model.predict(rows)
    assert list(model.predict(rows.to_dict(orient="records"))) == list(from_frame)
    assert list(model.predict(rows.iloc[0].to_dict())) == list(from_frame[:1])
    rows.to_parquet(tmp_path / "rows.parquet")
    assert list(model.predict(tmp_path / "rows.parquet")) == list(from_frame)


def test_free_text_column_learns_spam(sms_csv, tmp_path):
    model = dw.train(sms_csv, target="label", output=tmp_path, quiet=True, epochs=8, seed=0)
    assert model.preprocessor.features[0].type == "text"
    test = model.metrics.test
    assert test.model["accuracy"] > 0.95 > test.baseline["accuracy"]
    spam = model.predict([{"text": "WINNER!! You have won a free prize, call now to claim your cash reward"}])
    assert spam[0] == "spam"


def test_mixed_table_with_dates_ids_and_missing_values(tmp_path):
    rng = np.random.default_rng(0)
    n = 600
    signup = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    plan = rng.choice(["free", "pro", "team"], n)
    visits = rng.poisson(5, n).astype(float)
    visits[rng.random(n) < 0.1] = np.nan
    churn = (plan == "free") & (signup.month.isin([11, 12]) | (np.nan_to_num(visits) < 4))
    frame = pd.DataFrame({"customer": [f"C{i:05d}" for i in range(n)], "signup": signup.strftime("%Y-%m-%d"),
                          "plan": plan, "visits": visits, "newsletter": rng.choice(["yes", "no"], n),
                          "churned": np.where(churn, "yes", "no")})
    with pytest.warns(dw.DeepwellWarning, match="'customer' looks like an identifier"):
        model = dw.train(frame, target="churned", output=tmp_path, quiet=True, epochs=20, seed=0)
    types = {f.name: f.type for f in model.preprocessor.features}
    assert types == {"signup": "datetime", "plan": "category", "visits": "number", "newsletter": "binary"}
    assert model.metrics.test.model["accuracy"] > model.metrics.test.baseline["accuracy"] + 0.1
