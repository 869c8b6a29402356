"""ONNX export of trained networks, checked against PyTorch by onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deepwell as dw
from deepwell.export.onnx import export_network
from deepwell.inference.predict import encode_frame

onnxruntime = pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("data", ["wine", "adult", "sms"])
def test_the_onnx_graph_gives_pytorchs_outputs_on_held_out_rows(data, wine_frame, adult_csv, sms_csv, tmp_path):
    import pandas as pd

    table, target = {"wine": (wine_frame, "cultivar"), "adult": (pd.read_csv(adult_csv), "income"),
                     "sms": (pd.read_csv(sms_csv).head(600), "label")}[data]
    model = dw.train(table, target, output=tmp_path, epochs=2, seed=0, quiet=True, track=False)
    rows = table.drop(columns=target).tail(300)
    exported = export_network(model.network, encode_frame(model, rows.head(4)), model.task.is_regression,
                              tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    inputs = encode_frame(model, rows)
    got = session.run(None, {k: inputs[k].numpy() for k in exported.inputs})[0]  # 300 rows through a graph traced on 4
    np.testing.assert_allclose(got, np.asarray(model.predict_proba(rows)), atol=1e-4)
    assert exported.max_difference <= 1e-4 and exported.rows_checked == 4


def test_an_ensemble_exports_as_one_graph(breast_cancer_csv, tmp_path):
    import pandas as pd

    model = dw.train(breast_cancer_csv, "diagnosis", output=tmp_path, epochs=2, seed=0, quiet=True, track=False,
                     config={"model": {"ensemble_size": 3}})
    assert type(model.network).__name__ == "EnsembleNetwork"
    rows = pd.read_csv(breast_cancer_csv).drop(columns="diagnosis")
    exported = export_network(model.network, encode_frame(model, rows.head(2)), False, tmp_path / "e.onnx")
    session = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        got = session.run(None, {k: v.numpy() for k, v in encode_frame(model, rows).items()})[0]
    np.testing.assert_allclose(got, np.asarray(model.predict_proba(rows)), atol=1e-4)
