"""Presets and ensembles: several networks averaged into one model that saves, loads and predicts as one."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import deepwell as dw
from deepwell.config import Config, ModelConfig
from deepwell.models.network import EnsembleNetwork, TabularNetwork
from deepwell.pipeline.presets import member_configs, resolve_sizes
from deepwell.training.callbacks import Callback
from deepwell.training.state import StopReason


def small_table(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    label = np.where(x[:, 0] + 0.5 * x[:, 1] ** 2 + 0.3 * rng.normal(size=rows) > 0.5, "high", "low")
    return pd.DataFrame(x, columns=list("abcd")).assign(colour=rng.choice(["red", "blue"], rows), y=label)


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory) -> dw.Model:
    return dw.train(small_table(), "y", preset="balanced", epochs=6, output=tmp_path_factory.mktemp("runs"),
                    quiet=True)


def test_balanced_preset_averages_several_architectures_on_a_small_table(ensemble):
    network = ensemble.network
    assert isinstance(network, EnsembleNetwork) and len(network.members) == 5
    members = network.architecture["members"]
    assert {m["numeric_embedding"] for m in members} == {"periodic", "none"}
    assert {m["normalization"] for m in members} == {"layer", "batch"}
    assert sorted(m["hidden_width"] for m in members) == [128, 256, 256, 256, 256]
    facts = ensemble.metrics.training
    assert facts.ensemble_size == 5 and [m["epochs_run"] for m in facts.members] == [6] * 5
    assert facts.parameters == sum(p.numel() for p in network.parameters())


def test_an_ensemble_predicts_the_mean_of_its_members_probabilities(ensemble):
    rows = small_table(20, seed=1).drop(columns="y")
    inputs = {k: torch.as_tensor(v) for k, v in ensemble.preprocessor.transform(rows).items()}
    with torch.no_grad():
        members = torch.stack([m.eval()(inputs).softmax(dim=1) for m in ensemble.network.members]).mean(dim=0)
    assert np.allclose(ensemble.predict_proba(rows), members.numpy(), atol=1e-6)


def test_an_ensemble_saves_and_loads_as_one_model(ensemble, tmp_path):
    ensemble.save(tmp_path / "model")
    loaded = dw.load(tmp_path / "model")
    rows = small_table(30, seed=2).drop(columns="y")
    assert isinstance(loaded.network, EnsembleNetwork)
    assert np.array_equal(loaded.predict_proba(rows), ensemble.predict_proba(rows))
    assert Config.from_yaml(ensemble.run_dir / "config.yaml").model.ensemble_size == 5  # resolved once, saved


def test_a_regression_ensemble_averages_values(tmp_path):
    frame = small_table(200).drop(columns="y").assign(y=lambda f: f.a * 3 + f.b)
    model = dw.train(frame, "y", config={"target": "y", "model": {"ensemble_size": 3}}, epochs=3, output=tmp_path,
                     quiet=True)
    rows = frame.drop(columns="y").head(10)
    inputs = {k: torch.as_tensor(v) for k, v in model.preprocessor.transform(rows).items()}
    with torch.no_grad():
        scaled = torch.stack([m.eval()(inputs)[:, 0] for m in model.network.members]).mean(dim=0).numpy()
    assert np.allclose(model.predict(rows), model.preprocessor.target.unscale(scaled), atol=1e-4)


def test_fast_preset_and_large_tables_train_one_network():
    config = Config(target="y", preset="fast")
    assert resolve_sizes(config, 300).model.ensemble_size == 1
    for preset, rows, members in [("balanced", 300, 5), ("balanced", 5_000, 4), ("balanced", 22_000, 1),
                                  ("best", 22_000, 9), ("best", 1_000_000, 1)]:
        assert resolve_sizes(Config(target="y", preset=preset), rows).model.ensemble_size == members, (preset, rows)


def test_image_columns_cost_more_and_fine_tuned_encoders_are_never_copied():
    def images() -> Config:
        return Config.validate_dict({"target": "y", "preset": "balanced", "columns": {"x": {"type": "image"}}})
    assert resolve_sizes(images(), 200).model.ensemble_size == 5  # 200 × 20 = 4,000 of 20,000
    assert resolve_sizes(images(), 1_000).model.ensemble_size == 1
    tuned = Config.validate_dict({"target": "y", "columns": {"t": {"type": "text", "text": {
        "pretrained": "some-folder", "fine_tune": True}}}})
    assert resolve_sizes(tuned, 100).model.ensemble_size == 1


def test_seed_variety_keeps_the_chosen_architecture():
    config = Config.validate_dict({"target": "y", "model": {"ensemble_size": 3, "ensemble_variety": "seeds",
                                                            "hidden_width": 64}, "training": {"seed": 7}})
    members = member_configs(config)
    assert [m.training.seed for m in members] == [7, 1007, 2007]
    assert {m.model.model_dump_json(exclude={"ensemble_size"}) for m in members} == \
        {config.model.model_dump_json(exclude={"ensemble_size"})}


def test_a_one_unit_network_is_never_widened_by_the_narrower_member():
    config = Config.validate_dict({"target": "y", "model": {"ensemble_size": 3, "hidden_width": 1}})
    assert [m.model.hidden_width for m in member_configs(config)] == [1, 1, 1]


def test_ctrl_c_during_a_member_keeps_the_members_trained_so_far(tmp_path):
    class InterruptSecondMember(Callback):
        starts = 0

        def on_fit_start(self, trainer):
            type(self).starts += 1

        def on_epoch_end(self, trainer, epoch):
            if self.starts == 2 and epoch.epoch == 2:
                raise KeyboardInterrupt

    table = small_table()
    model = dw.train(table, "y", config={"target": "y", "model": {"ensemble_size": 4}}, epochs=4,
                     output=tmp_path, quiet=True, callbacks=[InterruptSecondMember()])
    assert len(model.network.members) == 2
    assert model.metrics.training.stop_reason == StopReason.INTERRUPTED
    assert [m["stop_reason"] for m in model.metrics.training.members] == ["max epochs", "interrupted"]
    assert (tmp_path / model.run_dir.name / "checkpoint.member-1.safetensors").exists()
    # resuming finishes the interrupted member from its checkpoint and trains the two never started
    resumed = dw.train(table, resume=model.run_dir, quiet=True)
    assert len(resumed.network.members) == 4
    assert [m["epochs_run"] for m in resumed.metrics.training.members] == [4, 4, 4, 4]
    first = model.network.members[0].state_dict()
    assert all(torch.equal(v, resumed.network.members[0].state_dict()[k]) for k, v in first.items())


def test_a_model_saved_before_ensembles_existed_is_one_network():
    config = ModelConfig(ensemble_size=1).model_dump(mode="json")
    del config["ensemble_size"], config["ensemble_variety"]
    network = TabularNetwork.from_architecture({"inputs": {"numeric": {"kind": "numeric", "width": 3}},
                                                "model": config, "output_dim": 2})
    assert type(network) is TabularNetwork


def test_auto_patience_waits_for_enough_steps_on_small_data():
    small = resolve_sizes(Config(target="y"), 300).training  # batch 32: 10 steps per epoch
    assert (small.batch_size, small.patience) == (32, 20)
    assert resolve_sizes(Config(target="y"), 30_000).training.patience == 8
    tiny = resolve_sizes(Config.validate_dict({"target": "y", "training": {"epochs": 12}}), 40).training
    assert tiny.patience == 12  # never more than the epoch budget


def test_cli_preset_option_and_the_ensemble_summary_line(tmp_path):
    path = tmp_path / "small.csv"
    small_table(150).to_csv(path, index=False)
    common = [sys.executable, "-m", "deepwell.cli.main", "train", str(path), "-t", "y", "-o", str(tmp_path),
              "--epochs", "2", "-q"]
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin", "DEEPWELL_TRACK": "0"}
    ensemble = subprocess.run([*common, "--preset", "balanced", "--name", "ens"], capture_output=True, text=True,
                              env=env)
    assert ensemble.returncode == 0, ensemble.stderr
    assert "an ensemble of 5 networks averaged" in ensemble.stdout
    info = subprocess.run([sys.executable, "-m", "deepwell.cli.main", "info", str(tmp_path / "ens")],
                          capture_output=True, text=True, env=env)
    assert "member 5 of 5: 3 hidden layers × 256 (gelu, layer norm, dropout 0.3" in info.stdout, info.stdout
    single = subprocess.run([*common, "--preset", "fast"], capture_output=True, text=True, env=env)
    assert "an ensemble" not in single.stdout and "best epoch" in single.stdout
    wrong = subprocess.run([*common, "--preset", "quick"], capture_output=True, text=True, env=env)
    assert wrong.returncode == 2 and "quick" in wrong.stderr


def test_an_ensembles_validation_score_is_the_averaged_models():
    """Tuning and auto-capacity compare fits by `best_validation`: for an ensemble, that of the average."""
    from deepwell.pipeline.fit import fit
    from deepwell.pipeline.prepare import prepare
    from deepwell.pipeline.score import score

    prepared = prepare(small_table(), "y", {"target": "y", "model": {"ensemble_size": 2}}, epochs=3)
    fitted = fit(prepared.config, prepared.splits)
    validation = score(fitted, prepared.splits).metrics.validation.model
    assert fitted.best_validation("accuracy") == pytest.approx(validation["accuracy"])
    assert fitted.best_validation("loss") == pytest.approx(validation["log_loss"], rel=1e-4)
