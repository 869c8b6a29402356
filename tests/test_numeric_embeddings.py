"""Numeric embeddings: the piecewise-linear encoding's bin edges come from the training rows, are saved with the
model, and let a network learn a threshold that a linear first layer cannot."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import deepwell as dw
from deepwell.config import ColumnConfig, ModelConfig
from deepwell.features.pipeline import Preprocessor
from deepwell.features.target import TargetEncoder
from deepwell.models.encoders import PiecewiseLinearNumericEncoder, quantile_edges
from deepwell.models.network import TabularNetwork
from deepwell.task import Task


def test_edges_are_distinct_training_quantiles_and_a_constant_column_gets_one_unit_bin():
    rng = np.random.default_rng(0)
    block = np.stack([rng.normal(size=500), rng.integers(0, 2, 500), np.full(500, 3.0)], axis=1)
    spread, binary, constant = quantile_edges(block, bins=8)
    assert len(spread) == 9 and spread == sorted(spread) and spread[0] == pytest.approx(block[:, 0].min(), abs=1e-6)
    assert binary == [0.0, 1.0]
    assert constant == [3.0, 4.0]


def test_encoding_fills_bins_below_the_value_and_extrapolates_beyond_the_outer_edges():
    encoder = PiecewiseLinearNumericEncoder([[0.0, 1.0, 2.0, 4.0], [0.0, 1.0]], dim=2)
    x = torch.tensor([[-1.0, 5.0], [1.5, 0.5], [6.0, -2.0]])
    position = (x.unsqueeze(-1) - encoder.left) / encoder.span
    encoded = torch.minimum(torch.maximum(position, encoder.low), encoder.high) * encoder.used
    assert encoded[0, 0].tolist() == [-1.0, 0.0, 0.0]  # below the first edge: the first bin goes negative
    assert encoded[1, 0].tolist() == [1.0, 0.5, 0.0]
    assert encoded[2, 0].tolist() == [1.0, 1.0, 2.0]  # beyond the last edge: the last bin keeps growing
    assert encoded[0, 1].tolist() == [5.0, 0.0, 0.0] and encoded[2, 1, 0] == -2.0  # one bin: linear; padding 0
    with torch.no_grad():  # at the start (bin weights zero) it is a plain linear embedding of each number
        assert torch.allclose(encoder(x).view(3, 2, 2), x.unsqueeze(-1) * encoder.weight + encoder.bias)


def fit_step(numeric_embedding: str) -> float:
    torch.manual_seed(0)
    x = torch.linspace(-2, 2, 400).unsqueeze(1)
    y = (x[:, 0] > 0.3).float().unsqueeze(1)
    spec = {"kind": "numeric", "width": 1, "edges": quantile_edges(x.numpy(), bins=16)}
    network = TabularNetwork({"numeric": spec}, ModelConfig(hidden_layers=0, numeric_embedding=numeric_embedding,
                                                           ensemble_size=1), 1)
    optimiser = torch.optim.Adam(network.parameters(), lr=0.05)
    for _ in range(300):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(network({"numeric": x}), y)
        loss.backward()
        optimiser.step()
    return float(loss.detach())


def test_piecewise_embedding_learns_a_threshold_a_linear_layer_cannot():
    linear, piecewise = fit_step("none"), fit_step("piecewise")
    assert linear > 0.05  # a straight line through a step
    assert piecewise < 0.01


def test_edges_come_from_the_training_rows_and_travel_in_the_preprocessor_state():
    train = pd.DataFrame({"a": np.arange(100.0), "y": ["p", "q"] * 50})
    columns = {"a": ColumnConfig(type="number")}
    preprocessor = Preprocessor.fit(train, columns, TargetEncoder("y", Task.BINARY))
    edges = preprocessor.numeric_edges[0]
    standardised = (np.arange(100.0) - 49.5) / np.arange(100.0).std()
    assert edges[0] == pytest.approx(standardised.min(), abs=1e-5)
    assert edges[-1] == pytest.approx(standardised.max(), abs=1e-5)
    again = Preprocessor.from_state(json.loads(preprocessor.to_json()))
    assert again.encoder_specs() == preprocessor.encoder_specs()
    assert again.encoder_specs()["numeric"]["edges"] == preprocessor.numeric_edges


def test_a_piecewise_model_saves_and_loads_with_identical_predictions(tmp_path):
    rng = np.random.default_rng(1)
    table = pd.DataFrame({"a": rng.normal(size=240), "b": rng.exponential(size=240)})
    table["y"] = np.where((table.a > 0.2) ^ (table.b > 1.0), "yes", "no")
    model = dw.train(table, "y", output=tmp_path / "runs", quiet=True, epochs=4,
                     config={"model": {"numeric_embedding": "piecewise", "ensemble_size": 1}})
    model.save(tmp_path / "model")
    architecture = json.loads((tmp_path / "model" / "architecture.json").read_text())
    assert architecture["model"]["numeric_embedding"] == "piecewise"
    assert len(architecture["inputs"]["numeric"]["edges"]) == 2
    rows = table.drop(columns="y").head(30)
    assert np.array_equal(dw.load(tmp_path / "model").predict_proba(rows), model.predict_proba(rows))


def test_a_piecewise_architecture_without_edges_is_a_clear_error():
    with pytest.raises(ValueError, match="bin edges"):
        TabularNetwork({"numeric": {"kind": "numeric", "width": 2}},
                       ModelConfig(numeric_embedding="piecewise", ensemble_size=1), 2)


def test_the_periodic_frequency_scale_is_a_model_setting():
    from deepwell.models.encoders import PeriodicNumericEncoder

    torch.manual_seed(0)
    spread = {}
    for scale in (0.1, 10.0):
        network = TabularNetwork({"numeric": {"kind": "numeric", "width": 40}},
                                 ModelConfig(ensemble_size=1, periodic_scale=scale), 2)
        assert isinstance(network.encoders["numeric"], PeriodicNumericEncoder)
        spread[scale] = network.encoders["numeric"].frequencies.std().item()
    assert 0.08 < spread[0.1] < 0.12 and 8 < spread[10.0] < 12
