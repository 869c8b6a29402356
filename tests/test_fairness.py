"""The bias audit's figures, checked against fairlearn's own functions on the same predictions, and its flags on
synthetic data whose decisions depend on the group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepwell.fairness.audit import audit_classifier, audit_data, audit_regressor
from deepwell.fairness.groups import group_labels


def biased(rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Women get the favourable label half as often as men; the 'model' copies the label 90 % of the time."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["Male", "Female"], rows, p=[0.65, 0.35])
    label = np.where(rng.random(rows) < np.where(sex == "Male", 0.4, 0.2), "yes", "no")
    predicted = np.where(rng.random(rows) < 0.9, label, np.where(label == "yes", "no", "yes"))
    return pd.DataFrame({"sex": sex, "race": rng.choice(["A", "B", "C"], rows), "label": label,
                         "predicted": predicted, "income": rng.normal(size=rows)})


def test_every_rate_and_difference_equals_fairlearns_own():
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score, precision_score

    frame = biased()
    truth, chosen = frame["label"] == "yes", frame["predicted"] == "yes"
    audit = audit_classifier(group_labels(frame, ["sex"]), frame["label"], frame["predicted"], "yes")
    reference = MetricFrame(metrics={"accuracy": accuracy_score, "selection_rate": selection_rate,
                                     "true_positive_rate": true_positive_rate,
                                     "false_positive_rate": false_positive_rate, "precision": precision_score},
                            y_true=truth, y_pred=chosen, sensitive_features=frame["sex"]).by_group
    for scores in audit.groups:
        for metric in reference.columns:
            assert getattr(scores, metric) == pytest.approx(reference.loc[scores.group, metric], abs=1e-12)
    values = {m.name: m.value for m in audit.metrics}
    assert audit.privileged == "Male"  # the largest group
    assert values["demographic_parity_difference (fairlearn)"] == pytest.approx(
        demographic_parity_difference(truth, chosen, sensitive_features=frame["sex"]))
    assert values["equalized_odds_difference (fairlearn)"] == pytest.approx(
        equalized_odds_difference(truth, chosen, sensitive_features=frame["sex"]))
    sr = reference["selection_rate"]
    assert values["statistical_parity_difference"] == pytest.approx(sr["Female"] - sr["Male"])
    assert values["disparate_impact_ratio"] == pytest.approx(sr["Female"] / sr["Male"])
    tpr, fpr = reference["true_positive_rate"], reference["false_positive_rate"]
    assert values["equal_opportunity_difference"] == pytest.approx(tpr["Female"] - tpr["Male"])
    assert values["average_odds_difference"] == pytest.approx(
        ((fpr["Female"] - fpr["Male"]) + (tpr["Female"] - tpr["Male"])) / 2)


def test_a_group_dependent_outcome_is_flagged_with_intervals_and_a_sentence():
    frame = biased()
    audit = audit_classifier(group_labels(frame, ["sex"]), frame["label"], frame["predicted"], "yes")
    flagged = {m.name: m for m in audit.flagged}
    assert {"statistical_parity_difference", "disparate_impact_ratio"} <= set(flagged)
    dir_ = flagged["disparate_impact_ratio"]
    assert dir_.interval[0] < dir_.value < dir_.interval[1] and dir_.interval[1] < 0.8  # clearly below 0.8
    assert "sex=Female gets the favourable outcome" in dir_.sentence and "sex=Male" in dir_.sentence
    fair = frame.assign(label=np.where(np.random.default_rng(1).random(len(frame)) < 0.3, "yes", "no"))
    fair["predicted"] = fair["label"]
    assert audit_classifier(group_labels(fair, ["sex"]), fair["label"], fair["predicted"], "yes").flagged == []


def test_intersectional_groups_and_small_groups_are_reported_but_not_compared():
    frame = biased(rows=400)
    groups = group_labels(frame, ["sex", "race"])
    assert groups.name == "sex & race" and "sex=Female & race=A" in set(groups)
    audit = audit_classifier(groups, frame["label"], frame["predicted"], "yes", privileged="sex=Male & race=A")
    assert len(audit.groups) == 6
    compared = {m.group for m in audit.metrics if m.group != "all groups"}
    small = {g.group for g in audit.groups if g.rows < 30}
    assert compared == {g.group for g in audit.groups} - small - {"sex=Male & race=A"}
    with pytest.raises(Exception, match="privileged group 'nobody' is not in the data"):
        audit_classifier(groups, frame["label"], frame["predicted"], "yes", privileged="nobody")


def test_the_data_audit_warns_of_small_groups_population_gaps_and_base_rate_gaps():
    frame = biased()
    frame.loc[frame.index[:40], "race"] = "D"  # 2 % of the rows
    frame.loc[frame.index[:10], "income"] = np.nan
    audit = audit_data(group_labels(frame, ["race"]), frame["label"], frame[["income"]], "yes")
    assert [g.group for g in audit.groups] == ["A", "B", "C", "D"]
    assert sum(g.share for g in audit.groups) == pytest.approx(1)
    assert audit.groups[3].missing == pytest.approx(10 / 40)
    assert any("race=D is 2.0% of the rows" in w for w in audit.warnings)
    by_sex = audit_data(group_labels(frame, ["sex"]), frame["label"], frame[["income"]], "yes",
                        population={"Female": 0.5})
    assert any("sex=Female" in w and "50% of the population" in w for w in by_sex.warnings)
    assert any("The label is 'yes'" in w for w in by_sex.warnings)  # 40 % of men against 20 % of women


def test_a_regressor_is_audited_by_error_and_mean_prediction_per_group():
    frame = biased()
    audit = audit_regressor(group_labels(frame, ["sex"]), frame["income"], frame["income"] + 0.5)
    assert {g.group: round(g.rmse, 6) for g in audit.groups} == {"Female": 0.5, "Male": 0.5}
    assert audit.groups[0].mean_prediction == pytest.approx(audit.groups[0].mean_target + 0.5)


@pytest.fixture(scope="module")
def adult_model(adult_csv, tmp_path_factory):
    import deepwell as dw

    return dw.train(adult_csv, "income", config={"training": {"epochs": 2}},
                    output=tmp_path_factory.mktemp("runs"), quiet=True, track=False)


def test_adult_audited_by_sex_matches_fairlearn_on_the_models_own_predictions(adult_model, adult_csv):
    from fairlearn.metrics import MetricFrame, selection_rate

    frame = pd.read_csv(adult_csv)
    audit = adult_model.audit(frame, "sex")
    assert audit.model.favourable == ">50K" and audit.model.privileged == "Male"
    chosen = adult_model.predict(frame) == ">50K"
    rates = MetricFrame(metrics=selection_rate, y_true=frame["income"] == ">50K", y_pred=chosen,
                        sensitive_features=frame["sex"]).by_group
    assert {g.group: g.selection_rate for g in audit.model.groups} == pytest.approx(rates.to_dict())
    data = {g.group: g for g in audit.data.groups}
    assert data["Female"].rows == (frame["sex"] == "Female").sum()
    assert data["Female"].base_rate == pytest.approx((frame.loc[frame["sex"] == "Female", "income"] == ">50K").mean())


def test_deepwell_audit_prints_the_tables_and_writes_fairness_json(adult_model, adult_csv, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "fairness.json"
    result = subprocess.run([str(Path(sys.executable).with_name("deepwell")), "audit", str(adult_model.run_dir),
                             str(adult_csv), "--sensitive", "sex,race", "--population", "sex=Female:0.5",
                             "--out", str(out)], capture_output=True, text=True,
                            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Fairness metrics" in result.stdout and "sex=Male & race=White" in result.stdout
    saved = json.loads(out.read_text())
    assert saved["model"]["attribute"] == "sex & race" and saved["rows"] == 2000
    assert saved["model"]["privileged"] == "sex=Male & race=White"  # the largest group
    names = {m["name"] for m in saved["model"]["metrics"]}
    assert {"statistical_parity_difference", "disparate_impact_ratio", "equal_opportunity_difference",
            "average_odds_difference", "demographic_parity_difference (fairlearn)"} <= names
    bad = subprocess.run([str(Path(sys.executable).with_name("deepwell")), "audit", str(adult_model.run_dir),
                          str(adult_csv), "--sensitive", "gender"], capture_output=True, text=True,
                         env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert bad.returncode != 0 and "'gender' not in the table" in bad.stderr and "Traceback" not in bad.stderr


def test_reweighing_makes_label_and_group_independent_and_keeps_each_groups_weight():
    from deepwell.fairness.mitigation import reweigh

    frame = biased()
    weights = reweigh(frame["sex"], frame["label"])
    weighted = pd.DataFrame({"sex": frame["sex"], "yes": (frame["label"] == "yes") * weights, "w": weights})
    totals = weighted.groupby("sex")[["yes", "w"]].sum()
    rate = totals["yes"] / totals["w"]
    assert rate["Female"] == pytest.approx(rate["Male"]) == pytest.approx((frame["label"] == "yes").mean())
    assert totals["w"].to_dict() == pytest.approx(frame["sex"].value_counts().to_dict())


def hiring(path, rows=3000):
    """A label that depends on the group (through a proxy the model can see)."""
    rng = np.random.default_rng(0)
    group = rng.choice(["a", "b"], rows, p=[0.6, 0.4])
    skill = rng.normal(size=rows)
    label = np.where(skill + np.where(group == "a", 0.8, -0.8) + rng.normal(0, 0.5, rows) > 0, "yes", "no")
    pd.DataFrame({"group": group, "skill": skill, "label": label}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("mitigation", ["reweigh", "threshold", "reductions"])
def test_each_mitigation_narrows_the_gap_and_the_audit_shows_before_and_after(tmp_path, mitigation):
    """One run per mitigation: fairness.json holds the mitigated model's audit and, beside it, the unmitigated
    model's metrics and accuracy on the same test rows; the CLI prints both."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    data = hiring(tmp_path / "hiring.csv", 1200)
    out = tmp_path / mitigation
    config = tmp_path / "config.yaml"  # fewer ExponentiatedGradient iterations than the default 10: a faster test
    config.write_text("target: label\nfairness:\n  reductions_iterations: 4\n")
    result = subprocess.run([str(Path(sys.executable).with_name("deepwell")), "train", str(data), "--config",
                             str(config), "--target", "label",
                             "--sensitive", "group", "--mitigate", mitigation, "--output", str(out), "--name", "run",
                             "--epochs", "6", "--no-track", "--seed", "0"],
                            capture_output=True, text=True, timeout=600,
                            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "DEEPWELL_PRESET": "fast"})
    assert result.returncode == 0, result.stderr
    assert "bias audit of the test split by group" in result.stdout and f"mitigation: {mitigation}" in result.stdout
    audit = json.loads((out / "run" / "fairness.json").read_text())
    rows = {r["metric"]: r for r in audit["mitigation"]["metrics"]}
    spd = rows["statistical_parity_difference"]
    assert spd["before"] < -0.3 and abs(spd["after"]) < abs(spd["before"]) - 0.1
    after = next(m["value"] for m in audit["model"]["metrics"] if m["name"] == "statistical_parity_difference")
    assert after == spd["after"]  # the report's "after" is the saved model's own audit
    cost = audit["mitigation"]["accuracy_cost"]
    assert cost == pytest.approx(audit["mitigation"]["accuracy_before"] - audit["mitigation"]["accuracy_after"])
    assert audit["mitigation"]["accuracy_after"] == audit["accuracy"]
    assert f"<h3>Mitigation: {mitigation}</h3>" in (out / "run" / "report.html").read_text()


def test_threshold_rules_match_fairlearn_and_travel_with_the_model(tmp_path):
    """The saved rules give fairlearn's own probabilities of the favourable outcome; a loaded model applies them where
    the sensitive column is present, the same answer every time."""
    import deepwell as dw
    from deepwell.fairness.thresholds import GroupThresholds, fit_thresholds

    rng = np.random.default_rng(1)
    groups = pd.Series(rng.choice(["a", "b"], 2000, p=[0.7, 0.3]), name="g")
    truth = rng.random(2000) < np.where(groups == "a", 0.6, 0.3)
    scores = np.clip(truth * 0.4 + rng.random(2000) * 0.6 + (groups == "a").to_numpy() * 0.1, 0, 1)
    rules = fit_thresholds(scores, truth, groups, ["g"], "1", "equalized_odds")
    from fairlearn.postprocessing import ThresholdOptimizer

    from deepwell.fairness.thresholds import _scores_estimator

    theirs = ThresholdOptimizer(estimator=_scores_estimator(), constraints="equalized_odds", prefit=True,
                                predict_method="predict_proba").fit(scores[:, None], truth.astype(int),
                                                                    sensitive_features=groups.to_numpy())
    expected = theirs._pmf_predict(scores[:, None], sensitive_features=groups.to_numpy())[:, 1]
    ours = np.select([groups == g for g in rules.rules], [r.favourable_probability(scores)
                                                         for r in rules.rules.values()])
    assert ours == pytest.approx(expected)
    assert GroupThresholds.from_dict(rules.to_dict()) == rules

    model = dw.train(hiring(tmp_path / "hiring.csv", 1500), "label", output=tmp_path / "runs", quiet=True,
                     track=False, config={"training": {"epochs": 4}, "fairness": {"sensitive": ["group"],
                                                                                 "mitigate": "threshold"}})
    assert (model.run_dir / "model" / "fairness_thresholds.json").is_file()
    loaded = dw.load(model.run_dir)
    table = pd.read_csv(tmp_path / "hiring.csv")
    labels = loaded.predict(table)
    assert (labels == loaded.predict(table)).all() and (labels == model.predict(table)).all()
    by_group = pd.Series(labels == "yes").groupby(table["group"]).mean()
    raw = pd.Series(loaded.predict_proba(table)[:, 1] > 0.5).groupby(table["group"]).mean()
    assert abs(by_group["a"] - by_group["b"]) < abs(raw["a"] - raw["b"]) - 0.2


def test_threshold_and_reductions_refuse_a_target_that_is_not_binary(tmp_path):
    import deepwell as dw

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"g": rng.choice(["a", "b"], 300), "x": rng.normal(size=300),
                          "y": rng.choice(["p", "q", "r"], 300)})
    with pytest.raises(dw.DeepwellError, match="needs a target with two classes.*multiclass"):
        dw.train(table, "y", output=tmp_path, quiet=True, track=False,
                 config={"fairness": {"sensitive": ["g"], "mitigate": "threshold"}})


def test_exclude_sensitive_keeps_the_column_out_of_the_inputs_and_a_wrong_name_is_named(tmp_path):
    import deepwell as dw

    frame = biased(rows=400)
    model = dw.train(frame.drop(columns="predicted"), "label", output=tmp_path, quiet=True, track=False,
                     config={"training": {"epochs": 1}, "fairness": {"sensitive": ["sex"], "exclude_sensitive": True}})
    assert "sex" not in model.input_columns and (model.run_dir / "fairness.json").is_file()
    report = (model.run_dir / "report.html").read_text()
    assert 'id="fairness"' in report and "demographic_parity_difference (fairlearn)" in report  # the report section
    assert "privileged group <b>" in report
    with pytest.raises(dw.DeepwellError, match="fairness.sensitive names column"):
        dw.train(frame, "label", output=tmp_path, quiet=True, track=False,
                 config={"fairness": {"sensitive": ["gender"]}})
