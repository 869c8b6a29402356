"""Where an export's rows come from: held-out rows to prove the export on (the run's own test predictions, or a
table the user gives) and training rows to calibrate static int8 on (the run's data file, or a table given)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from deepwell.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from deepwell.model import Model

SEED = 0


def _table(path: Path, model: Model) -> tuple[pd.DataFrame, Path | None]:
    """A table file, or a folder of class folders as the table of its files; relative paths anchor at its folder."""
    from deepwell.data.io import read_table
    from deepwell.inference.predict import read_inputs

    if path.is_dir():
        frame, _, base_dir = read_inputs(model, path)
        return frame, base_dir
    return read_table(path), path.parent


def held_out_rows(model: Model, data: pd.DataFrame | Path | None) -> tuple[pd.DataFrame, Path | None, str]:
    """(rows, the folder their file paths are relative to, where they came from)."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data, None, "the rows given"
    if data is not None:
        frame, base_dir = _table(Path(data), model)
        return frame, base_dir, str(data)
    if model.run_dir is not None:
        from deepwell.data.io import read_table
        from deepwell.runs.layout import RunFolder

        run = RunFolder(model.run_dir)
        if run.predictions.is_file():
            frame = read_table(run.predictions)
            keep = [c for c in frame.columns if c in model.input_columns or c == model.target]
            return frame[keep], _data_folder(run), f"{run.predictions} (the run's test split)"
    raise DataError("An export is checked on held-out rows: give a table the model can predict with --data (this "
                    "model has no run folder with its test predictions).")


def calibration_rows(model: Model, data: Path | None, rows: int) -> tuple[pd.DataFrame, Path | None]:
    """A seeded sample of training rows: `data`, else the table the run was trained on, where it still is."""
    if data is None and model.run_dir is not None:
        from deepwell.runs.layout import RunFolder

        recorded = (RunFolder(model.run_dir).read_info().get("data") or {}).get("path")
        data = Path(recorded) if recorded and Path(recorded).exists() else None
    if data is None:
        raise DataError("Static int8 (a network with convolutions) is calibrated on training rows: give a table or "
                        "folder of them with --calibration (the run's own data file is no longer where it was).")
    frame, base_dir = _table(Path(data), model)
    return frame.sample(min(rows, len(frame)), random_state=SEED), base_dir


def _data_folder(run) -> Path | None:
    """The folder the run's data file was in: relative file paths in its table are relative to it."""
    recorded = (run.read_info().get("data") or {}).get("path")
    return Path(recorded).parent if recorded and Path(recorded).is_file() else None
