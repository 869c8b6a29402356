"""int8 quantisation of an exported graph with onnxruntime's tools: dynamic (weights int8, activations quantised
per batch as it runs) for linear, embedding and recurrent layers; static (activation ranges calibrated on training
rows, QDQ format, per-channel weights) where the network has convolutions, which dynamic quantisation leaves
in float.
"""

from __future__ import annotations

import logging
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from deepwell.errors import ConfigError

DYNAMIC_OPS = ["MatMul", "Gemm", "Gather", "LSTM", "GRU", "Attention"]
STATIC_OPS = ["Conv", "MatMul", "Gemm"]


@contextmanager
def _quiet():
    """onnxruntime's quantisation tools log advice through the root logger; keep it off the user's screen."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def float_nodes(path: Path) -> list[str]:
    """Nodes kept in float under static int8: the log-mel spectrogram's DFT convolution (models/audio.LogMel),
    whose int8 power spectrum went through the log as noise (an audio model agreed with fp32 on 0 of 8 rows)."""
    import onnx

    return [node.name for node in onnx.load(str(path), load_external_data=False).graph.node if "logmel" in node.name]


def has_convolutions(path: Path) -> bool:
    import onnx

    return any(node.op_type == "Conv" for node in onnx.load(str(path), load_external_data=False).graph.node)


def quantize_graph(path: Path, calibration: dict[str, Any] | None) -> str:
    """`path` replaced by its int8 version; the method used ("dynamic" or "static") is returned. A graph with
    convolutions needs `calibration` (encoded training rows: graph input name → tensor)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not has_convolutions(path):
        quantize_dynamic_graph(path)
        return "dynamic"
    if calibration is None:
        raise ConfigError("int8 for a network with convolutions is calibrated on training rows: give them with "
                          "--calibration FILE (the run's own data file is used when it is still where it was).")
    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        try:
            quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
        except Exception:  # shape inference is an optimisation; quantise the graph as it is
            prepared = path
        with _quiet():
            quantize_static(str(prepared), str(quantized), _Reader(calibration), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                            op_types_to_quantize=STATIC_OPS, nodes_to_exclude=float_nodes(prepared))
        quantized.replace(path)
    return "static"


def quantize_dynamic_graph(path: Path) -> None:
    """`path` replaced by its dynamically quantised int8 version (a transformer encoder's graph)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        quantized = Path(tmp) / "int8.onnx"
        with _quiet():
            quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8, op_types_to_quantize=DYNAMIC_OPS)
        quantized.replace(path)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol: one batch of 32 rows after another, then None."""

    BATCH = 32

    def __init__(self, inputs: dict[str, Any]) -> None:
        arrays = {k: np.asarray(v) for k, v in inputs.items()}
        rows = len(next(iter(arrays.values())))
        self.batches = iter([{k: a[s:s + self.BATCH] for k, a in arrays.items()} for s in range(0, rows, self.BATCH)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)

    def rewind(self) -> None:  # part of the protocol; one pass is all calibration needs here
        pass
