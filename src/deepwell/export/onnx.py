"""The network of a trained model (every encoder, an ensemble's members, the head) as one ONNX graph with a
dynamic batch axis: the encoded inputs (`inference/predict.encode_frame`) in, probabilities (classification) or
standardised values (regression) out — what `inference/network.network_outputs` computes.

An export succeeds only after `onnx.checker` accepts the graph and onnxruntime reproduces PyTorch's outputs on
the rows given (within `TOLERANCE`); otherwise it says by how much they differ.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepwell.errors import ConfigError, ModelFileError

TOLERANCE = 1e-4
OPSET = 17
OUTPUT = "outputs"


class _Graph(nn.Module):
    """The network with positional inputs (ONNX has no dicts) and its outputs as network_outputs gives them."""

    def __init__(self, network: nn.Module, keys: list[str], regression: bool) -> None:
        super().__init__()
        self.network, self.keys, self.regression = network, keys, regression

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        out = self.network(dict(zip(self.keys, tensors, strict=True))).float()
        return out[:, :1] if self.regression else out.softmax(dim=1)


@dataclass
class Exported:
    path: Path
    inputs: list[str]  # graph input names, in order (the network's input keys)
    max_difference: float  # the largest |onnxruntime − PyTorch| on the check rows
    rows_checked: int


def _onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ConfigError("ONNX export needs onnx and onnxruntime: pip install 'deepwell[export]'.") from None
    return onnx, onnxruntime


def write_graph(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path, inputs: list[str],
                outputs: list[str], axes: dict[str, dict[int, str]]) -> None:
    """`module` traced on `example` into an ONNX file (TorchScript exporter, OPSET; `axes` stay dynamic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused transformer layer has no ONNX spelling; the plain one
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(module.eval(), example, str(path), input_names=inputs, output_names=outputs,
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def export_network(network: nn.Module, inputs: dict[str, torch.Tensor], regression: bool, path: Path) -> Exported:
    """Write `network` to `path` as ONNX, traced on `inputs` (a few encoded rows; the batch axis stays dynamic),
    then check it: the ONNX checker, and onnxruntime against PyTorch on the same rows."""
    onnx, onnxruntime = _onnx()
    keys = list(inputs)
    graph = _Graph(network.cpu().eval(), keys, regression).eval()
    example = tuple(inputs[k].cpu() for k in keys)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {**{k: {0: "rows"} for k in keys}, OUTPUT: {0: "rows"}}
    write_graph(graph, example, path, keys, [OUTPUT], axes)
    onnx.checker.check_model(str(path), full_check=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT], {k: v.numpy() for k, v in zip(keys, example, strict=True)})[0]
    with torch.no_grad():
        expected = graph(*example).numpy()
    difference = float(np.abs(got - expected).max()) if got.size else 0.0
    if not difference <= TOLERANCE:
        path.unlink(missing_ok=True)
        raise ModelFileError(f"the ONNX graph's outputs differ from PyTorch's by {difference:.3g} (at most "
                             f"{TOLERANCE:g} allowed) on {len(got)} rows; the export was not written.")
    return Exported(path, keys, difference, len(got))
