"""The platform's contracts: a light import without side effects, the fit step without a run folder, the one
prediction path, and a report that mentions only commands that exist."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import deepwell as dw
from conftest import FAST

HEAVY = ("torch", "sklearn", "matplotlib", "mlflow", "transformers", "pandas", "scipy", "optuna")


def loaded_after(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_import_deepwell_loads_nothing_heavy():
    modules = loaded_after("import deepwell")
    assert not [m for m in HEAVY if m in modules]
    cli = loaded_after("import deepwell.cli.main")  # what `deepwell --help` needs
    assert not [m for m in HEAVY if m in cli]


def test_names_resolve_lazily_and_unknown_names_fail_clearly():
    assert dw.train.__module__ == "deepwell.pipeline.run" and dw.Task.REGRESSION.is_regression
    assert "train" in dir(dw)
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        dw.trian  # noqa: B018


def test_importing_every_module_changes_no_global_state():
    """deepwell's modules change no matplotlib backend, environment variable or logging switch when imported."""
    code = """
import logging, os, matplotlib
import sklearn.ensemble, torch  # scikit-learn's own import sets KMP_* variables: not deepwell's doing
backend, environ, disabled = matplotlib.get_backend(), dict(os.environ), logging.root.manager.disable
import deepwell.pipeline.run, deepwell.reports.plots, deepwell.tracking.tracker, deepwell.tuning.study
import deepwell.sklearn, deepwell.inference.predict, deepwell.cli.main
assert matplotlib.get_backend() == backend, matplotlib.get_backend()
assert dict(os.environ) == environ
assert logging.root.manager.disable == disabled
"""
    subprocess.run([sys.executable, "-c", code], check=True, env={"MPLBACKEND": "svg", "PATH": "/usr/bin:/bin"})


def test_fit_and_score_need_no_run_folder(wine_frame, tmp_path, monkeypatch):
    from deepwell.pipeline.fit import fit
    from deepwell.pipeline.prepare import prepare
    from deepwell.pipeline.score import score

    monkeypatch.chdir(tmp_path)
    prepared = prepare(wine_frame, "cultivar", epochs=FAST["epochs"], seed=0)
    assert prepared.config.task == dw.Task.MULTICLASS and isinstance(prepared.config.training.batch_size, int)
    fitted = fit(prepared.config, prepared.splits)
    scored = score(fitted, prepared.splits)
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert scored.metrics.validation.model["accuracy"] == pytest.approx(fitted.best_validation("accuracy"))
    assert scored.metrics.test.rows == len(prepared.splits.test)
    assert scored.diagnosis.verdict in set(type(scored.diagnosis.verdict))
    again = dw.Model(fitted.preprocessor, fitted.network, fitted.meta())
    assert again.predict(prepared.splits.test).shape == (len(prepared.splits.test),)


def test_metrics_have_one_serialisation(wine_frame, tmp_path):
    from deepwell.evaluation.results import RunMetrics

    model = dw.train(wine_frame, "cultivar", output=tmp_path, quiet=True, **FAST)
    saved = json.loads((model.run_dir / "metrics.json").read_text())
    assert saved == model.metrics.to_dict()
    assert RunMetrics.from_dict(saved) == model.metrics
    assert model.metrics.flat()["test_accuracy"] == saved["test"]["model"]["accuracy"]


def test_one_prediction_path_with_a_per_row_error_field(wine_frame, tmp_path):
    from deepwell.inference.predict import predict

    model = dw.train(wine_frame, "cultivar", output=tmp_path, quiet=True, **FAST)
    rows = wine_frame.drop(columns="cultivar").head(4)
    frame, predictions = predict(model, rows.to_dict(orient="records"))
    assert predictions.errors == [None] * 4 and predictions.failed_rows == []
    assert list(predictions.predictions) == list(model.predict(rows))
    np.testing.assert_allclose(predictions.probabilities, model.predict_proba(rows))
    table = predictions.table(frame)
    assert "error" not in table and list(table.columns[-3:]) == [f"probability_{c}" for c in model.classes_]


def test_the_report_mentions_only_commands_that_exist(wine_frame, tmp_path):
    from typer.main import get_command

    from deepwell.cli.main import app

    commands = set(get_command(app).commands)
    model = dw.train(wine_frame, "cultivar", output=tmp_path, quiet=True, **FAST)
    html = (model.run_dir / "report.html").read_text()
    mentioned = set(re.findall(r"deepwell ([a-z][a-z-]+) [A-Z_]{3,}", html))  # e.g. "deepwell diagnose RUN_DIR"
    assert mentioned and mentioned <= commands, mentioned - commands


def test_no_module_imports_its_importer():
    """model.py and the registry no longer import each other."""
    from pathlib import Path

    root = Path(dw.__file__).parent
    assert "tracking" not in (root / "model.py").read_text()
    assert "deepwell.model" not in (root / "tracking" / "registry.py").read_text()
