"""`deepwell export`: a trained model as a folder the edge runtime (`deepwell.edge`) runs with numpy and
onnxruntime alone — the network as one ONNX graph, each frozen pretrained encoder as its own (`encoders.py`), the
fitted preprocessing as the model's own preprocessor.json, and its metrics, reference profile and thresholds.

The export proves itself before it is swapped into place: the ONNX checker, onnxruntime against PyTorch on the
network's inputs (export/onnx.py), then the edge runtime — its own preprocessing included — against the full
model on held-out rows (fp32 within `TOLERANCE`; int8 labels agreeing on at least `min_agreement` of them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepwell.errors import ConfigError, DataError, ModelFileError
from deepwell.export.encoders import file_encoders, pretrained_text
from deepwell.export.onnx import TOLERANCE, export_network
from deepwell.runs.files import staged_folder, write_json, write_text

if TYPE_CHECKING:
    import pandas as pd

    from deepwell.edge.values import Table
    from deepwell.model import Model

TRACE_ROWS = 8  # rows the graph is traced on (its batch axis stays dynamic)
CHECK_ROWS = 512  # held-out rows the edge runtime is compared on
CALIBRATION_ROWS = 256  # training rows static int8 quantisation is calibrated on
REGRESSION_AGREEMENT = 0.1  # an int8 value agrees when within this many target standard deviations of fp32's


class Quantize(str, Enum):
    NONE = "none"
    INT8 = "int8"


@dataclass
class ExportReport:
    """What `export_model` wrote and what it checked; `agreement` and `accuracy` say how int8 compares."""

    folder: Path
    size_bytes: int
    graph_bytes: int
    max_difference: float  # the largest |edge − full model| output on the check rows (fp32)
    rows_checked: int
    quantization: str | None = None  # "dynamic" or "static" int8
    fp32_graph_bytes: int | None = None
    agreement: float | None = None  # int8 vs fp32: share of labels equal (or values within 0.1 target std)
    int8_max_difference: float | None = None  # largest |int8 − fp32| output (probability, or value in target stds)
    accuracy: dict[str, float] = field(default_factory=dict)  # fp32 / int8 on check rows that carry the target
    source: str = "the rows given"  # where the check rows came from

    def to_dict(self) -> dict[str, Any]:
        return {"size_bytes": self.size_bytes, "graph_bytes": self.graph_bytes, "max_difference": self.max_difference,
                "rows_checked": self.rows_checked, "quantization": self.quantization,
                "fp32_graph_bytes": self.fp32_graph_bytes, "agreement": self.agreement,
                "int8_max_difference": self.int8_max_difference, "accuracy": self.accuracy}


def export(model: Model, output: str | Path, *, data: pd.DataFrame | str | Path | None = None,
           calibration: str | Path | None = None, quantize: Quantize | str = Quantize.NONE,
           min_agreement: float = 0.99) -> ExportReport:
    """`export_model` with its rows found as `deepwell export` finds them: held-out rows from `data`, else the run's
    test predictions; calibration rows (static int8 only) from `calibration`, else the run's data file."""
    from deepwell.export.rows import calibration_rows, held_out_rows

    rows, base_dir, source = held_out_rows(model, Path(data) if isinstance(data, str) else data)
    training, training_dir = None, None
    if Quantize(quantize) is Quantize.INT8 and needs_calibration(model):
        training, training_dir = calibration_rows(model, Path(calibration) if calibration else None, CALIBRATION_ROWS)
    report = export_model(model, output, rows, quantize=quantize, calibration=training, min_agreement=min_agreement,
                          base_dir=base_dir, calibration_dir=training_dir)
    report.source = source
    return report


def export_model(model: Model, output: str | Path, rows: pd.DataFrame, *, quantize: Quantize | str = Quantize.NONE,
                 calibration: pd.DataFrame | None = None, min_agreement: float = 0.99,
                 base_dir: Path | None = None, calibration_dir: Path | None = None) -> ExportReport:
    """Write `model` to `output` for the edge runtime, checked on `rows` (held-out rows; file paths relative to
    `base_dir`). int8 quantises linear, embedding and recurrent layers dynamically, and a network with
    convolutions statically, calibrated on `calibration` (training rows; paths relative to `calibration_dir`)."""
    quantize = Quantize(quantize)
    if not 0 <= min_agreement <= 1:
        raise ConfigError(f"min_agreement must be between 0 and 1; got {min_agreement!r}.")
    rows = rows.head(CHECK_ROWS)
    check = _encoded(model, rows, base_dir, "check rows")
    output = Path(output)
    with staged_folder(output) as staging:
        exported = export_network(model.network, {k: v[:TRACE_ROWS] for k, v in check.inputs.items()},
                                  model.task.is_regression, staging / "model.onnx")
        pretrained = pretrained_text(model, staging)
        _write_files(model, staging, exported.inputs, pretrained, file_encoders(model, staging))
        report = _verify(model, staging, rows.loc[check.kept], base_dir)
        if quantize is Quantize.INT8:
            calibrated = None if calibration is None else _encoded(model, calibration.head(CALIBRATION_ROWS),
                                                                    calibration_dir, "calibration rows")
            _quantize(model, staging, rows.loc[check.kept], base_dir, calibrated, min_agreement, report)
    report.folder = output
    report.size_bytes = sum(p.stat().st_size for p in output.rglob("*") if p.is_file())
    return report


def needs_calibration(model: Model) -> bool:
    """Whether int8 for this model is static (its network has convolutions) and so needs training rows."""
    from torch import nn

    return any(isinstance(m, (nn.Conv1d, nn.Conv2d)) for m in model.network.modules())


@dataclass
class _Encoded:
    inputs: dict[str, Any]
    kept: list[Any]  # index labels of the rows whose files decoded


def _encoded(model: Model, rows: pd.DataFrame, base_dir: Path | None, what: str) -> _Encoded:
    from deepwell.inference.predict import encode_frame

    errors: dict[Any, str] = {}
    inputs = encode_frame(model, rows, what, base_dir, errors)
    kept = [i for i in rows.index if i not in errors]
    if not kept:
        raise DataError(f"None of the {len(rows)} {what} could be encoded (first: {next(iter(errors.values()))}); "
                        "give rows the model can read (--data).")
    positions = rows.index.get_indexer(kept)
    return _Encoded({k: v[positions] for k, v in inputs.items()}, kept)


def _write_files(model: Model, folder: Path, inputs: list[str], pretrained: dict[str, dict[str, Any]],
                 file_encoders: dict[str, str]) -> None:
    from deepwell import __version__
    from deepwell.edge.model import FORMAT, FORMAT_VERSION, INFO
    from deepwell.inference.network import ENCODER_BATCH, TABLE_BATCH

    heavy = any(hasattr(module, "base_state_keys") for module in model.network.modules())
    write_text(folder / "preprocessor.json", model.preprocessor.to_json())
    write_json(folder / INFO, {"format": FORMAT, "format_version": FORMAT_VERSION, "deepwell_version": __version__,
                               "task": model.task.value, "target": model.target, "classes": model.classes_,
                               "inputs": [{"name": name} for name in inputs], "pretrained_text": pretrained,
                               "file_encoders": file_encoders,
                               "batch": ENCODER_BATCH if heavy else TABLE_BATCH, "quantization": None})
    for name, part in (("metrics.json", model.metrics), ("diagnosis.json", model.diagnosis),
                       ("reference.json", model.reference), ("fairness_thresholds.json", model.thresholds)):
        if part is not None:
            write_json(folder / name, part.to_dict())


def edge_table(rows: pd.DataFrame, source: str, base_dir: Path | None) -> Table:
    """A DataFrame's rows as the edge runtime reads a table (NaN as None)."""
    from deepwell.edge.values import Table, is_missing

    return Table({str(c): [None if is_missing(v) else v for v in rows[c].tolist()] for c in rows.columns},
                 len(rows), source, base_dir)


def _verify(model: Model, folder: Path, rows: pd.DataFrame, base_dir: Path | None) -> ExportReport:
    """The edge runtime on the check rows against the full model: equal outputs (within TOLERANCE)."""
    from deepwell.edge.model import EdgeModel
    from deepwell.inference.predict import predict_frame

    features = rows.drop(columns=[model.target], errors="ignore")
    expected = predict_frame(model, features, "check rows", base_dir).outputs
    got = EdgeModel(folder).predict(edge_table(features, "check rows", base_dir)).outputs
    difference = float(np.nanmax(np.abs(got - expected))) if got.size else 0.0
    if not difference <= TOLERANCE:
        raise ModelFileError(f"the exported model's outputs differ from the full model's by {difference:.3g} (at most "
                             f"{TOLERANCE:g} allowed) on {len(rows)} held-out rows; nothing was written.")
    graph = (folder / "model.onnx").stat().st_size
    return ExportReport(folder, 0, graph, difference, len(rows), accuracy=_accuracy(model, rows, expected))


def _accuracy(model: Model, rows: pd.DataFrame, outputs: np.ndarray) -> dict[str, float]:
    """fp32 accuracy (or RMSE) on the check rows that carry the target; {} when they do not."""
    if model.target not in rows.columns:
        return {}
    from deepwell.inference.predict import from_outputs

    return {"fp32": _score(model, rows, from_outputs(model, outputs).predictions)}


def _score(model: Model, rows: pd.DataFrame, predictions: np.ndarray) -> float:
    from deepwell.edge.values import value_key

    truth = rows[model.target].tolist()
    if model.task.is_regression:
        return float(np.sqrt(np.mean((np.asarray(predictions, float) - np.asarray(truth, float)) ** 2)))
    return float(np.mean([value_key(p) == value_key(t) for p, t in zip(predictions, truth, strict=True)]))


def _quantize(model: Model, folder: Path, rows: pd.DataFrame, base_dir: Path | None, calibration: _Encoded | None,
              min_agreement: float, report: ExportReport) -> None:
    """model.onnx → int8 in place, refused (with the numbers) when it agrees with fp32 on too few rows."""
    from deepwell.edge.model import EdgeModel
    from deepwell.export.quantize import quantize_dynamic_graph, quantize_graph

    features = rows.drop(columns=[model.target], errors="ignore")
    table = edge_table(features, "check rows", base_dir)
    fp32 = EdgeModel(folder).predict(table)
    report.fp32_graph_bytes = (folder / "model.onnx").stat().st_size
    report.quantization = quantize_graph(folder / "model.onnx", calibration.inputs if calibration else None)
    for encoder in sorted((folder / "encoders").glob("*.onnx")):  # a frozen transformer: linear layers
        quantize_dynamic_graph(encoder)
    int8 = EdgeModel(folder).predict(table)
    if model.task.is_regression:
        scale = REGRESSION_AGREEMENT * model.preprocessor.target.std
        agree = np.abs(np.asarray(int8.predictions, float) - np.asarray(fp32.predictions, float)) <= scale
    else:
        agree = np.asarray([a == b for a, b in zip(int8.predictions, fp32.predictions, strict=True)])
    report.agreement = float(agree.mean())
    difference = np.abs(np.asarray(int8.outputs, float) - np.asarray(fp32.outputs, float))
    report.int8_max_difference = float(np.nanmax(difference, initial=0.0))
    report.graph_bytes = (folder / "model.onnx").stat().st_size
    if model.target in rows.columns:
        report.accuracy["int8"] = _score(model, rows, np.asarray(int8.predictions, dtype=object))
    if report.agreement < min_agreement:
        raise ModelFileError(f"int8 ({report.quantization}) agrees with fp32 on {report.agreement:.2%} of "
                             f"{len(rows)} held-out rows, below the {min_agreement:.2%} asked for "
                             f"(--min-agreement); its outputs differ from fp32's by {report.int8_max_difference:.3g} "
                             "at most, so rows whose two likeliest classes are closer than that can flip. Nothing "
                             "was written. Export without --quantize, or lower the bar.")
    from deepwell.edge.model import INFO

    info = json.loads((folder / INFO).read_text(encoding="utf-8"))
    info["quantization"] = {"method": report.quantization, "agreement": report.agreement, "rows": len(rows),
                            "max_difference": report.int8_max_difference}
    write_json(folder / INFO, info)
