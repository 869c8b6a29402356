"""The scikit-learn face: scikit-learn's own estimator checks, and use inside Pipeline, cross_val_score,
GridSearchCV and fairlearn's reductions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from deepwell.sklearn import DeepwellClassifier, DeepwellRegressor

SMALL = {"hidden_layers": 1, "hidden_width": 32, "epochs": 12, "patience": 4, "device": "cpu", "random_state": 0}

# Checks expected to fail, with the reason (scikit-learn runs them and reports an unexpected pass).
EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data":
        "mini-batch training: a row of weight 2 and the same row repeated give different batches and step counts "
        "(and a different validation split), so the two fits differ — as for any SGD-trained network",
    "check_methods_subset_invariance":
        "float32 network: a row's output can differ in the last float32 bit (about 2e-7 here, against the check's "
        "1e-7 tolerance) with the number of rows in the batch, since BLAS picks a different matrix-multiply kernel",
}


@parametrize_with_checks([DeepwellClassifier(**SMALL), DeepwellRegressor(**SMALL)],
                         expected_failed_checks=lambda estimator: EXPECTED_FAILURES)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


def test_constructor_only_stores_and_params_round_trip():
    clf = DeepwellClassifier(hidden_width=64, dropout=0.1)
    params = clf.get_params()
    assert params["hidden_width"] == 64 and params["dropout"] == 0.1 and params["random_state"] == 42
    assert clone(clf).get_params() == params
    assert not [k for k in vars(clf) if k.endswith("_")]  # nothing learned before fit
    assert clf.set_params(hidden_layers=2).hidden_layers == 2


def test_an_ensemble_is_one_estimator(cancer):
    X_train, X_test, y_train, _ = cancer
    clf = DeepwellClassifier(**{**SMALL, "epochs": 3}, ensemble_size=3).fit(X_train, y_train)
    assert len(clf.model_.network.members) == 3
    assert clf.predict_proba(X_test).shape == (len(X_test), 2)
    assert DeepwellClassifier(preset="best").get_params()["preset"] == "best"


def test_dataframe_fit_keeps_feature_names_and_beats_the_majority(cancer):
    X_train, X_test, y_train, y_test = cancer
    clf = DeepwellClassifier(**SMALL).fit(X_train, y_train)
    assert list(clf.feature_names_in_) == list(X_train.columns) and clf.n_features_in_ == X_train.shape[1]
    assert list(clf.classes_) == [0, 1]
    proba = clf.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert clf.score(X_test, y_test) > max(y_test.mean(), 1 - y_test.mean()) + 0.2
    assert clf.best_epoch_ >= 1 and len(clf.history_) >= clf.best_epoch_


def test_string_labels_and_categories_in_a_dataframe():
    rng = np.random.default_rng(0)
    colour = rng.choice(["red", "green", "blue"], 300)
    size = rng.normal(size=300)
    y = np.where((colour == "red") | (size > 1), "yes", "no")
    X = pd.DataFrame({"colour": colour, "size": size})
    clf = DeepwellClassifier(**SMALL).fit(X, y)
    assert list(clf.classes_) == ["no", "yes"]
    assert set(clf.predict(X)) <= {"no", "yes"} and clf.score(X, y) > 0.9
    assert clf.model_.preprocessor.features[0].type == "category"  # the DataFrame's types are inferred


def test_pipeline_cross_validation_and_grid_search(cancer):
    X_train, _, y_train, _ = cancer
    pipe = make_pipeline(StandardScaler(), DeepwellClassifier(**SMALL))
    scores = cross_val_score(pipe, X_train.to_numpy(), y_train.to_numpy(), cv=3)
    assert scores.shape == (3,) and scores.min() > 0.85
    search = GridSearchCV(DeepwellRegressor(**SMALL), {"hidden_width": [8, 32]}, cv=2)
    search.fit(X_train.to_numpy(), X_train["mean area"].to_numpy() / 1000)
    assert search.best_params_["hidden_width"] in (8, 32) and search.best_score_ > 0.5


def test_sample_weight_changes_what_is_learned():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 2))
    y = (X[:, 0] > 0).astype(int)
    y[:100] = 1 - y[:100]  # a quarter of the labels contradict the rule
    plain = DeepwellClassifier(**SMALL).fit(X, y)
    weights = np.ones(len(y))
    weights[:100] = 50.0  # …and now they dominate the loss
    weighted = DeepwellClassifier(**SMALL).fit(X, y, sample_weight=weights)
    assert weighted.score(X[:100], y[:100]) > plain.score(X[:100], y[:100]) + 0.2
    with pytest.raises(ValueError, match="(?i)negative"):
        DeepwellClassifier(**SMALL).fit(X, y, sample_weight=-weights)


def test_fairlearn_exponentiated_gradient_reduces_the_disparity():
    from fairlearn.metrics import demographic_parity_difference
    from fairlearn.reductions import DemographicParity, ExponentiatedGradient

    rng = np.random.default_rng(2)
    group = rng.integers(0, 2, 600)
    score = rng.normal(size=600) + 1.2 * group  # the label follows the group
    X = np.column_stack([score, rng.normal(size=600)])
    y = (score + rng.normal(scale=0.3, size=600) > 0.6).astype(int)
    plain = DeepwellClassifier(**SMALL).fit(X, y)
    before = demographic_parity_difference(y, plain.predict(X), sensitive_features=group)
    mitigated = ExponentiatedGradient(DeepwellClassifier(**{**SMALL, "epochs": 15}), DemographicParity(),
                                      max_iter=8)
    mitigated.fit(X, y, sensitive_features=group)
    after = demographic_parity_difference(y, mitigated.predict(X, random_state=0), sensitive_features=group)
    assert before > 0.3 and after < before / 2
