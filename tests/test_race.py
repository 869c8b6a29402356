"""`model.periodic_scale: auto`: a short race on validation between the smooth and the sharp frequency spread
(pipeline/race.py), and the spread pair in the periodic encoder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from deepwell.config import RACE_EPOCHS, RACE_VALIDATION_ROWS, SHARP_SCALE, SMOOTH_SCALE, Config, ModelConfig
from deepwell.models.encoders import PeriodicNumericEncoder
from deepwell.pipeline.race import resolve_periodic_scale
from deepwell.training.state import EpochResult, FitResult, StopReason


def config(**model) -> Config:
    return Config.model_validate({"target": "y", "task": "binary", "preset": "balanced", "model": model})


def fake_trainer(losses: dict):
    calls = []

    def train_for(candidate: Config, epochs: int) -> FitResult:
        calls.append((candidate.model.periodic_scale, epochs, candidate.model.ensemble_size))
        loss = losses[candidate.model.periodic_scale]
        history = [EpochResult(epoch=i + 1, lr=1e-3, train_loss=1.0, validation={"loss": loss + 0.1 * (2 - i)})
                   for i in range(epochs)]
        return FitResult(history=history, stop_reason=StopReason.EPOCH_LIMIT)
    return train_for, calls


@pytest.mark.parametrize("winner", [SMOOTH_SCALE, SHARP_SCALE])
def test_the_candidate_with_the_lower_validation_loss_wins(winner):
    loser = SHARP_SCALE if winner == SMOOTH_SCALE else SMOOTH_SCALE
    train_for, calls = fake_trainer({winner: 0.30, loser: 0.31})
    original = config(ensemble_size=3)
    resolved = resolve_periodic_scale(original, RACE_VALIDATION_ROWS, True, train_for)
    assert resolved.model.periodic_scale == winner and original.model.periodic_scale == "auto"
    assert calls == [(SMOOTH_SCALE, RACE_EPOCHS, 1), (SHARP_SCALE, RACE_EPOCHS, 1)]  # one network each


@pytest.mark.parametrize("case", ["small validation", "fast preset", "no numbers", "piecewise"])
def test_no_race_where_it_cannot_tell_or_should_not_spend(case):
    train_for, calls = fake_trainer({SMOOTH_SCALE: 0.5, SHARP_SCALE: 0.1})
    chosen = config(numeric_embedding="piecewise" if case == "piecewise" else "periodic")
    if case == "fast preset":
        chosen.preset = "fast"
    rows = RACE_VALIDATION_ROWS - 1 if case == "small validation" else 10_000
    resolved = resolve_periodic_scale(chosen, rows, case != "no numbers", train_for)
    assert resolved.model.periodic_scale == SMOOTH_SCALE and calls == []


def test_a_set_scale_is_kept_without_a_race():
    train_for, calls = fake_trainer({})
    chosen = config(periodic_scale=3.0)
    assert resolve_periodic_scale(chosen, 10_000, True, train_for) is chosen and calls == []


def test_a_scale_pair_spreads_each_numbers_frequencies_from_low_to_high():
    torch.manual_seed(0)
    encoder = PeriodicNumericEncoder(400, frequencies=16, sigma=(0.1, 30.0))
    spread = encoder.frequencies.std(dim=0)  # per frequency index, over the numbers
    assert 0.08 < spread[0].item() < 0.12 and 24 < spread[-1].item() < 36
    assert torch.all(spread[1:] > spread[:-1] * 0.9)
    assert ModelConfig(periodic_scale=[0.1, 30]).periodic_scale == (0.1, 30.0)
    with pytest.raises(ValueError, match=r"low <= high, got \[30.0, 0.1\]"):
        Config.model_validate({"target": "y", "model": {"periodic_scale": [30, 0.1]}})


def test_auto_trains_the_network_that_setting_the_winner_would():
    """A label that flips with the parity of an integer code: only sharp frequencies can fit it, the race sees it
    in the validation loss, and the run then trains exactly the network `periodic_scale: [0.1, 30]` trains."""
    from deepwell.pipeline.fit import fit
    from deepwell.pipeline.prepare import prepare

    rng = np.random.default_rng(0)
    rows = 8 * RACE_VALIDATION_ROWS  # validation: 15%
    code = rng.integers(0, 40, rows)
    frame = pd.DataFrame({"code": code.astype(float), "noise": rng.normal(size=rows),
                          "y": np.where(code % 2 == 0, "even", "odd")})
    settings = {"target": "y", "task": "binary", "preset": "balanced",
                "columns": {"code": {"type": "number", "levels": False}, "noise": {"type": "number"}},
                "model": {"hidden_layers": 1, "hidden_width": 32, "ensemble_size": 1},
                "training": {"epochs": 5, "batch_size": 128, "seed": 0, "device": "cpu", "threads": 1}}
    prepared = prepare(frame, "y", settings)
    splits = prepared.splits
    assert len(splits.validation) >= RACE_VALIDATION_ROWS and prepared.config.model.periodic_scale == "auto"
    raced = fit(prepared.config, splits)
    assert raced.config.model.periodic_scale == SHARP_SCALE
    assert raced.network.architecture["model"]["periodic_scale"] == list(SHARP_SCALE)
    settings["model"]["periodic_scale"] = list(SHARP_SCALE)
    by_hand = fit(prepare(frame, "y", settings).config, splits)
    for a, b in zip(raced.network.state_dict().values(), by_hand.network.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_the_run_writes_the_settled_scale_into_its_config(tmp_path):
    import yaml

    import deepwell as dw

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=120), "y": rng.choice(["a", "b"], 120)})
    model = dw.train(frame, "y", config={"training": {"epochs": 2}}, output=tmp_path, quiet=True, track=False)
    saved = yaml.safe_load((model.run_dir / "config.yaml").read_text())
    assert saved["model"]["periodic_scale"] == SMOOTH_SCALE  # a 18-row validation split: no race, the smooth scale
