"""Training on a Ray cluster: a real local cluster (a head and one more node, small CPU counts) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

pytest.importorskip("ray.train")

import deepwell as dw  # noqa: E402
from deepwell.errors import ConfigError  # noqa: E402
from deepwell.runs.layout import RunFolder  # noqa: E402
from deepwell.training.callbacks import Callback  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """A head node with one CPU and a worker node with two: two training workers land on different nodes."""
    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    local = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    local.add_node(num_cpus=2)
    local.wait_for_nodes()
    yield local.address
    ray.shutdown()
    local.shutdown()


def on_ray(address: str, workers: int) -> dict:
    return {"backend": "ray", "workers": workers, "address": address}


def history(run) -> pd.DataFrame:
    return pd.read_csv(RunFolder(run).history)


def accuracy(model) -> float:
    return model.metrics.test.model["accuracy"]


def test_two_workers_reach_one_workers_accuracy(cluster, adult_csv, tmp_path):
    """One worker is the local fit (the same steps, batches and schedule); two split each batch between them."""
    two = dw.train(adult_csv, "income", output=tmp_path, name="two", epochs=6, quiet=True,
                   cluster=on_ray(cluster, 2))
    local = dw.train(adult_csv, "income", output=tmp_path, name="local", epochs=6, quiet=True)
    assert abs(accuracy(two) - accuracy(local)) <= 0.03, (accuracy(local), accuracy(two))
    assert accuracy(two) > two.metrics.test.baseline["accuracy"] + 0.05
    # the run folder of a distributed run is a local run's: same files, a model that loads and predicts
    files = {p.name for p in (tmp_path / "local").iterdir()}
    assert {p.name for p in (tmp_path / "two").iterdir()} == files
    assert len(history(tmp_path / "two")) == 6 and RunFolder(tmp_path / "two").read_info()["status"] == "finished"
    loaded = dw.load(tmp_path / "two" / "model")
    assert (loaded.predict(adult_csv) == two.predict(adult_csv)).all()


class KillAWorker(Callback):
    """After epoch 2 (its checkpoint is persisted by then), SIGKILL one of Ray Train's worker processes."""

    def __init__(self) -> None:
        self.killed: list[int] = []

    def on_epoch_end(self, trainer, epoch) -> None:
        if epoch.epoch == 2 and not self.killed:
            workers = [p for p in psutil.process_iter(["cmdline"]) if "RayTrainWorker" in " ".join(p.info["cmdline"]
                                                                                                    or [])]
            assert workers, "no Ray Train worker process found"
            os.kill(workers[-1].pid, signal.SIGKILL)
            self.killed.append(workers[-1].pid)


def test_a_killed_worker_is_restarted_from_the_last_checkpoint(cluster, breast_cancer_csv, tmp_path):
    killer = KillAWorker()
    with pytest.warns(dw.DeepwellWarning, match="restarted the training workers 1 time"):
        model = dw.train(breast_cancer_csv, "diagnosis", output=tmp_path, name="killed", epochs=6, quiet=True,
                         cluster=on_ray(cluster, 2), callbacks=[killer])
    assert killer.killed
    epochs = list(history(tmp_path / "killed")["epoch"])
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) >= 3  # each epoch once, past the kill
    assert accuracy(model) > 0.85
    assert (tmp_path / "killed" / "model").is_dir() and not (tmp_path / "killed" / "ray").exists()


class LoseTheHeadNode(Callback):
    """At epoch 3: the epochs so far are already in MLflow (logged live from the relay); once a checkpoint is
    persisted, the cluster (its head node with it) is shut down under the running fit."""

    def __init__(self, cluster, run: Path) -> None:
        self.cluster, self.run = cluster, run
        self.live_steps: list[int] = []

    def on_epoch_end(self, trainer, epoch) -> None:
        if epoch.epoch != 3 or self.live_steps:
            return
        import mlflow

        tracking = json.loads((self.run / "run.json").read_text())["tracking"]
        history = mlflow.MlflowClient(tracking["uri"]).get_metric_history(tracking["run_id"], "val_loss")
        self.live_steps = [m.step for m in history]
        deadline = time.monotonic() + 60
        while not list((self.run / "ray").glob("*/checkpoint_*/checkpoint.safetensors")):
            assert time.monotonic() < deadline, "no checkpoint persisted by epoch 3"
            time.sleep(0.2)
        self.cluster.shutdown()


def test_a_lost_head_node_ends_the_run_with_a_message_and_a_folder_that_resumes(breast_cancer_csv, tmp_path,
                                                                                monkeypatch):
    """Its own cluster (the shared one stays up): the driver notices the lost head within the GCS reconnect
    timeout; the run folder says failed, keeps the last checkpoint, and `--resume` finishes it on this machine."""
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_gcs_rpc_server_reconnect_timeout_s", "10")  # the driver's wait for a lost head
    lost = Cluster(initialize_head=True, head_node_args={"num_cpus": 3, "include_dashboard": False})
    run = tmp_path / "lost"
    head = LoseTheHeadNode(lost, run)
    started = time.monotonic()
    try:
        with pytest.raises(dw.DeepwellError, match=r"failed after \d+ epoch\(s\) shown.*--resume") as failure:
            dw.train(breast_cancer_csv, "diagnosis", output=tmp_path, name="lost", epochs=40, quiet=True,
                     track=True, cluster=on_ray(lost.address, 2), callbacks=[head])
    finally:
        lost.shutdown()
    assert head.live_steps == [1, 2, 3]  # MLflow had each epoch while the fit ran
    assert time.monotonic() - started < 180
    assert str(run / "checkpoint.safetensors") in str(failure.value)
    info = RunFolder(run).read_info()
    assert info["status"] == "failed" and "Ray cluster" in info["error"]
    assert (run / "checkpoint.safetensors").is_file() and not (run / "model").exists()
    model = dw.train(resume=run, quiet=True, cluster={"backend": "local"})
    epochs = list(history(run)["epoch"])
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) > 3  # went on from the saved epoch
    assert RunFolder(run).read_info()["status"] == "finished" and accuracy(model) > 0.85


def test_a_streamed_table_trains_on_ray_workers_from_its_chunks(cluster, tmp_path):
    """A Parquet folder streamed (pass 2's chunks read by Ray Data on this node, batch by batch on each worker)
    reaches the accuracy of the same streamed fit here, with every test row scored."""
    from test_streaming import STREAM, table

    folder = tmp_path / "rows"
    folder.mkdir()
    frame = table(6000)
    for part in range(3):
        frame.iloc[part * 2000:(part + 1) * 2000].to_parquet(folder / f"part-{part}.parquet", index=False)
    two = dw.train(folder, "label", config={**STREAM, "cluster": on_ray(cluster, 2)}, output=tmp_path, name="two",
                   epochs=5, quiet=True, track=False)
    local = dw.train(folder, "label", config=STREAM, output=tmp_path, name="local", epochs=5, quiet=True,
                     track=False)
    info = RunFolder(tmp_path / "two").read_info()
    assert "streamed" in info and two.metrics.test.rows == info["split"]["test"]  # every test row, not a sample
    assert abs(accuracy(two) - accuracy(local)) <= 0.03, (accuracy(local), accuracy(two))
    assert accuracy(two) > two.metrics.test.baseline["accuracy"] + 0.1
    assert len(history(tmp_path / "two")) == 5 and not list(tmp_path.glob("deepwell-chunks-*"))


def test_what_cannot_run_on_ray_is_refused_before_training(breast_cancer_csv, tmp_path):
    with pytest.raises(ConfigError, match="cluster.workers: 400 workers need at least 800 training rows"):
        dw.train(breast_cancer_csv, "diagnosis", output=tmp_path, quiet=True,
                 cluster={"backend": "ray", "workers": 400, "address": "127.0.0.1:1"})
    with pytest.raises(ConfigError, match="cluster.workers"):
        dw.train(breast_cancer_csv, "diagnosis", output=tmp_path, quiet=True, cluster={"workers": 0})


def test_ray_serve_replicas_answer_tritonclient(cluster, breast_cancer_csv, tmp_path):
    """`deepwell serve --backend ray`: the same app on Ray Serve, asked by a real Open Inference Protocol client."""
    import subprocess
    import sys

    import numpy as np
    import tritonclient.http as httpclient

    from conftest import free_port, wait_until_ready

    model = dw.train(breast_cancer_csv, "diagnosis", output=tmp_path, name="served", epochs=3, quiet=True)
    rows = pd.read_csv(breast_cancer_csv).drop(columns=["diagnosis"]).head(5)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "deepwell.cli.main", "serve", str(model.run_dir), "--backend",
                                "ray", "--replicas", "2", "--address", cluster, "--port", str(port), "--no-log"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_ready(process, f"http://127.0.0.1:{port}", 120)
        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_model_ready("model")
        inputs = []
        for column in rows.columns:
            tensor = httpclient.InferInput(column, [len(rows)], "FP64")
            tensor.set_data_from_numpy(rows[column].to_numpy(np.float64))
            inputs.append(tensor)
        for _ in range(4):  # the proxy spreads them over both replicas
            result = client.infer("model", inputs)
            np.testing.assert_allclose(result.as_numpy("probabilities"), model.predict_proba(rows), atol=1e-6)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=90)
    output = process.stdout.read()
    assert process.returncode == 0 and "Traceback" not in output, output  # SIGTERM removes the deployment


def test_ray_tune_spreads_trials_and_keeps_the_local_searchs_results(cluster, wine_frame, tmp_path):
    """Four trials, two at once on the cluster: the given configuration first, the local search's table, a winner
    no worse than it, retrained as a normal run."""
    data = tmp_path / "wine.csv"
    wine_frame.to_csv(data, index=False)
    result = dw.tune(data, "cultivar", trials=4, jobs=2, epochs=8, output=tmp_path, quiet=True, track=False,
                     backend="ray", address=cluster)
    table = result.trials
    assert len(table) == 4 and set(table["state"]) <= {"complete", "pruned"}
    given = table.loc[(table["hidden_width"] == 256) & (table["hidden_layers"] == 3)]
    assert len(given) >= 1 and result.best_value >= given["validation_accuracy"].max() - 1e-9
    assert {"trial", "validation_accuracy", "parameters", "seconds", "epochs", "dropout"} <= set(table.columns)
    assert (result.folder / "trials.csv").is_file() and (result.folder / "best.yaml").is_file()
    saved = dw.Config.from_yaml(result.model.run_dir / "config.yaml")
    assert saved.model.hidden_width == result.best_params["hidden_width"]
    assert result.model.metrics.validation.model["accuracy"] == pytest.approx(result.best_value)
