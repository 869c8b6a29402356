"""MLflow tracking and the model registry, against a real local MLflow store (SQLite) and a real
`mlflow models serve` on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepwell as dw
from conftest import free_port

mlflow = pytest.importorskip("mlflow")
DEEPWELL = [sys.executable, "-m", "deepwell.cli.main"]
SMALL = {"model": {"hidden_layers": 1, "hidden_width": 32}}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def tracked(wine_frame, store, tmp_path_factory) -> dw.Model:
    return dw.train(wine_frame, "cultivar", config=SMALL, output=tmp_path_factory.mktemp("runs"), epochs=6, seed=0,
                    quiet=True, track=True, tracking_uri=store, experiment="wine", register="wine")


def tracking_of(model: dw.Model) -> dict:
    return json.loads((model.run_dir / "run.json").read_text())["tracking"]


def test_run_is_logged_with_params_epoch_metrics_tags_and_artifacts(tracked, store):
    client = mlflow.MlflowClient(store)
    run = client.get_run(tracking_of(tracked)["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == tracked.run_dir.name
    assert run.data.params["model.hidden_width"] == "32" and run.data.params["target"] == "cultivar"
    assert run.data.params["columns.alcohol.type"] == "number"
    history = client.get_metric_history(run.info.run_id, "val_loss")
    epochs = tracked.metrics.training.epochs_run
    assert [m.step for m in history] == list(range(1, epochs + 1))
    saved = pd.read_csv(tracked.run_dir / "history.csv")
    np.testing.assert_allclose([m.value for m in history], saved["val_loss"], rtol=1e-6)
    assert run.data.metrics["test_accuracy"] == pytest.approx(tracked.metrics.test.model["accuracy"])
    assert "baseline_test_accuracy" in run.data.metrics
    tags = run.data.tags
    assert tags["task"] == "multiclass" and tags["target"] == "cultivar" and tags["deepwell.version"] == dw.__version__
    assert tags["data.sha256"]
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "run")}
    assert {"run/report.html", "run/metrics.json", "run/profile.json", "run/config.yaml",
            "run/history.csv", "run/explanations.json", "run/explanations"} <= logged
    explained = {a.path for a in client.list_artifacts(run.info.run_id, "run/explanations")}
    assert {"run/explanations/explanations.csv", "run/explanations/importance.csv"} <= explained
    assert "run/checkpoint.safetensors" not in logged


def test_logged_pyfunc_model_predicts_like_the_model(tracked, store, wine_frame):
    mlflow.set_tracking_uri(store)
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{tracking_of(tracked)['run_id']}/model")
    rows = wine_frame.drop(columns="cultivar").head(20)
    out = pyfunc.predict(rows)
    assert list(out["prediction"]) == list(tracked.predict(rows))
    np.testing.assert_allclose(out[[f"probability_{c}" for c in tracked.classes_]].to_numpy(),
                               tracked.predict_proba(rows), atol=1e-6)


def test_mlflow_models_serve_returns_the_same_predictions(tracked, store, wine_frame, tmp_path):
    port = free_port()
    # as in an activated environment: MLflow starts the `uvicorn` found on PATH
    env = {**os.environ, "MLFLOW_TRACKING_URI": store,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                               f"runs:/{tracking_of(tracked)['run_id']}/model", "--env-manager", "local",
                               "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while True:
            assert server.poll() is None, f"mlflow models serve exited: {server.stderr.read()[-2000:]}"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).close()
                break
            except OSError:
                assert time.time() < deadline, "the MLflow server did not come up"
                time.sleep(0.5)
        rows = wine_frame.drop(columns="cultivar").head(15)
        body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            served = pd.DataFrame(json.loads(response.read())["predictions"])
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert list(served["prediction"]) == list(tracked.predict(rows))
    np.testing.assert_allclose(served[[f"probability_{c}" for c in tracked.classes_]].to_numpy(),
                               tracked.predict_proba(rows), atol=1e-5)


def test_register_promote_and_load_by_alias(tracked, store, wine_frame, tmp_path):
    second = dw.train(wine_frame, "cultivar", config=SMALL, output=tmp_path, epochs=3, seed=1, quiet=True,
                      track=True, tracking_uri=store, experiment="wine", register="wine")
    assert tracking_of(tracked)["model_version"] == 1 and tracking_of(second)["model_version"] == 2
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    promoted = subprocess.run(DEEPWELL + ["models", "promote", "wine", "1", "--alias", "production"],
                              env=env, capture_output=True, text=True)
    assert promoted.returncode == 0, promoted.stderr
    listed = subprocess.run(DEEPWELL + ["models", "list"], env=env, capture_output=True, text=True)
    assert "production" in listed.stdout and "wine" in listed.stdout
    os.environ["MLFLOW_TRACKING_URI"] = store  # how deepwell is pointed at a store (or --tracking-uri)
    try:
        loaded = dw.load("models:/wine@production")
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    rows = wine_frame.drop(columns="cultivar").head(30)
    np.testing.assert_array_equal(loaded.predict_proba(rows), tracked.predict_proba(rows))
    assert not np.array_equal(loaded.predict_proba(rows), second.predict_proba(rows))
    missing = subprocess.run(DEEPWELL + ["models", "promote", "wine", "7"], env=env, capture_output=True,
                             text=True)
    assert missing.returncode == 2 and "has no version 7" in missing.stderr


def test_runs_and_compare_commands(tracked, store, wine_frame, tmp_path):
    other = dw.train(wine_frame, "cultivar", config={"model": {"hidden_layers": 2, "hidden_width": 16}},
                     output=tmp_path, epochs=2, seed=0, quiet=True, track=True, tracking_uri=store,
                     experiment="wine")
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "COLUMNS": "250"}
    listed = subprocess.run(DEEPWELL + ["runs", "--experiment", "wine"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert tracking_of(other)["run_id"] in listed.stdout and "test_accuracy" in listed.stdout  # whole id
    narrow = subprocess.run(DEEPWELL + ["runs", "--experiment", "wine"], env={**env, "COLUMNS": "80"},
                            capture_output=True, text=True)
    assert tracking_of(other)["run_id"] in narrow.stdout  # never cut, even when the table is wider than 80
    as_json = subprocess.run(DEEPWELL + ["runs", "--experiment", "wine", "--format", "json"], env=env,
                             capture_output=True, text=True)
    assert tracking_of(other)["run_id"] in {row["run_id"] for row in json.loads(as_json.stdout)}
    by_id = subprocess.run(DEEPWELL + ["compare", tracking_of(tracked)["run_id"], tracking_of(other)["run_id"]],
                           env=env, capture_output=True, text=True)
    by_folder = subprocess.run(DEEPWELL + ["compare", str(tracked.run_dir), str(other.run_dir)], env=env,
                               capture_output=True, text=True)
    for result in (by_id, by_folder):
        assert result.returncode == 0, result.stderr
        assert "model.hidden_layers" in result.stdout and "test_accuracy" in result.stdout
        assert "model.activation" not in result.stdout  # equal settings are left out


def test_the_default_store_sits_beside_the_run_folders_not_in_the_working_folder(wine_frame, tmp_path,
                                                                                 monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    runs, data = tmp_path / "runs", tmp_path / "wine.csv"
    wine_frame.to_csv(data, index=False)
    result = subprocess.run(DEEPWELL + ["train", str(data), "-t", "cultivar", "-o", str(runs), "--epochs", "2", "-q",
                                        "--track", "--register", "wine"], capture_output=True, text=True, cwd=work)
    assert result.returncode == 0, result.stderr
    assert list(work.iterdir()) == []  # no mlflow.db, no mlruns/ in the working folder
    assert (runs / "mlflow.db").is_file() and (runs / "mlartifacts").is_dir()
    assert "Registered model" not in result.stderr and "Created version" not in result.stderr  # MLflow's own
    listed = subprocess.run(DEEPWELL + ["models", "list", "-o", str(runs)], capture_output=True, text=True,
                            cwd=work)
    assert listed.returncode == 0 and "wine" in listed.stdout, listed.stderr
    empty = subprocess.run(DEEPWELL + ["models", "list", "-o", str(tmp_path / "none")], capture_output=True,
                           text=True, cwd=work)
    assert empty.returncode == 2 and "No MLflow store" in empty.stderr


def test_unreachable_tracking_server_warns_and_still_trains(wine_frame, tmp_path):
    with pytest.warns(dw.DeepwellWarning, match=r"http://127.0.0.1:9 is unreachable"):
        model = dw.train(wine_frame, "cultivar", config=SMALL, output=tmp_path, epochs=2, quiet=True, track=True,
                         tracking_uri="http://127.0.0.1:9")
    assert model.metrics.test.model["accuracy"] > 0.5
    assert "tracking" not in json.loads((model.run_dir / "run.json").read_text())


def test_a_tracking_failure_mid_run_warns_once_and_training_finishes(wine_frame, store, tmp_path, monkeypatch):
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise ConnectionError("tracking server went away")

    monkeypatch.setattr(mlflow.MlflowClient, "log_batch", broken)
    with pytest.warns(dw.DeepwellWarning, match="MLflow tracking stopped.*went away") as caught:
        model = dw.train(wine_frame, "cultivar", config=SMALL, output=tmp_path, epochs=3, quiet=True, track=True,
                         tracking_uri=store)
    assert len([w for w in caught if "tracking stopped" in str(w.message)]) == 1 and len(calls) == 1
    assert (model.run_dir / "model" / "weights.safetensors").is_file()
    assert json.loads((model.run_dir / "run.json").read_text())["status"] == "finished"


def test_served_file_columns_take_bytes_not_paths(digits_folder, tmp_path):
    from deepwell.errors import DataError
    from deepwell.tracking.pyfunc import DeepwellPyfunc

    model = dw.train(digits_folder, config={"target": "label", "columns": {"image": {
        "type": "image", "image": {"size": 16, "width": 8, "flip": False}}}}, output=tmp_path, epochs=1,
                     quiet=True)
    pyfunc = DeepwellPyfunc()
    pyfunc.load_context(type("Context", (), {"artifacts": {"deepwell_model": str(model.run_dir / "model")}})())
    files = sorted(Path(digits_folder).rglob("*.png"))[:4]
    encoded = pd.DataFrame({"image": [base64.b64encode(f.read_bytes()).decode() for f in files]})
    out = pyfunc.predict(None, encoded)
    np.testing.assert_allclose(out[[f"probability_{c}" for c in model.classes_]].to_numpy(),
                               model.predict_proba(pd.DataFrame({"image": [str(f) for f in files]})), atol=1e-6)
    with pytest.raises(DataError, match=r"'image', row 0: expected the file's content as base64.*does not read "
                                        "file paths"):
        pyfunc.predict(None, pd.DataFrame({"image": [str(files[0])]}))
