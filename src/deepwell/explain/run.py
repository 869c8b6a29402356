"""A model's explanation of a table: per-row attributions with the top reasons in words, saliency maps for image and
audio columns, and (when the table has the target) global permutation importance — what `deepwell explain`,
`Model.explain`, the server's explain route and a run's report use.

Files (`Explanation.save`): explanations.csv (one row per explained row, one attribution column per input column),
importance.csv and importance.png, tokens.json (text columns' per-token attributions), saliency/ (PNG overlays).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deepwell.data.io import TableLike
from deepwell.errors import DataError
from deepwell.explain.attributions import STEPS, Attributions, integrated_gradients
from deepwell.explain.importance import Importance, permutation_importance
from deepwell.runs.files import write_text

if TYPE_CHECKING:
    from deepwell.model import Model

MAX_ROWS = 1000  # rows explained at most in one call (Integrated Gradients costs ~STEPS forward passes per row)
REASONS = 3
BATCH = 256


@dataclass
class Explanation:
    rows: list[int]  # positions in the table explained
    table: pd.DataFrame  # the explained rows as given
    predictions: list[Any]
    attributions: Attributions
    importance: Importance | None = None
    reasons: list[list[str]] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        """explanations.csv: row, prediction, what is explained, its value and baseline value, one column per
        input column (its attribution), the reasons in words."""
        a = self.attributions
        front = pd.DataFrame({"row": self.rows, "prediction": self.predictions, "explained": a.explained,
                              "output": a.output, "baseline_output": a.baseline_output})
        values = pd.DataFrame(a.values, columns=a.columns)
        return pd.concat([front, values], axis=1).assign(reasons=[" · ".join(r) for r in self.reasons])

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.attributions.columns, "baselines": self.attributions.baselines,
                "rows": self.frame().to_dict(orient="records"), "tokens": self.attributions.tokens,
                "importance": None if self.importance is None else self.importance.to_frame().to_dict("records")}

    def save(self, folder: str | Path) -> Path:
        from deepwell.explain.pictures import importance_chart, saliency_pngs

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / "explanations.csv", self.frame().to_csv(index=False))
        write_text(folder / "baselines.json", json.dumps(self.attributions.baselines, indent=1))
        if self.attributions.tokens:
            write_text(folder / "tokens.json", json.dumps(self.attributions.tokens, ensure_ascii=False))
        if self.importance is not None:
            write_text(folder / "importance.csv", self.importance.to_frame().to_csv(index=False))
            importance_chart(self.importance, folder / "importance.png")
        saliency_pngs(self, folder / "saliency")
        return folder


def explain_model(model: Model, data: TableLike, rows: Sequence[int] | None = None, *, steps: int = STEPS,
                  importance: bool | None = None, maps: bool = True) -> Explanation:
    """Explain `rows` (positions; default: all, at most MAX_ROWS) of `data`. Permutation importance is computed on
    all of `data` when it has the target column (`importance=None`), always (`True`, an error without it) or never."""
    from deepwell.inference.network import network_outputs
    from deepwell.inference.predict import encode_frame, from_outputs, read_inputs, with_thresholds

    frame, source, base_dir = read_inputs(model, data)
    frame = frame.reset_index(drop=True)
    chosen = _rows(rows, len(frame), source)
    part = frame.iloc[chosen].reset_index(drop=True)
    pieces, outputs = [], []
    for start in range(0, len(part), BATCH):  # each batch read and encoded once: predicted, then explained
        failed: dict[Any, str] = {}  # given, so files are decoded now even for a column kept out of memory
        inputs = encode_frame(model, part.iloc[start:start + BATCH], source, base_dir, failed)
        if failed:
            shown = "; ".join(f"row {chosen[r]}: {why}" for r, why in list(failed.items())[:5])
            raise DataError(f"{source}: {len(failed)} row(s) cannot be explained: {shown}.")
        outputs.append(network_outputs(model.network, inputs, model.task, model.device).astype(np.float64))
        targets = None if model.task.is_regression else _targets(outputs[-1])
        pieces.append(integrated_gradients(model.network, model.preprocessor, inputs, targets, model.device, steps,
                                           maps))
    predictions = with_thresholds(model, part, from_outputs(model, np.concatenate(outputs)))
    attributions = _joined(pieces)
    explanation = Explanation(chosen, part, list(predictions.predictions), attributions)
    explanation.reasons = [reasons(part.iloc[i], attributions, i) for i in range(len(part))]
    has_target = model.target in frame.columns and frame[model.target].notna().any()
    if importance and not has_target:
        raise DataError(f"{source}: permutation importance needs the target column {model.target!r}.")
    if importance or (importance is None and has_target):
        labelled = frame[frame[model.target].notna()]
        explanation.importance = permutation_importance(model, labelled, base_dir)
    return explanation


def reasons(row: pd.Series, attributions: Attributions, index: int, top: int = REASONS) -> list[str]:
    """The largest attributions of a row in words: "age=52 raised P(>50K) by 0.14"."""
    values = attributions.values[index]
    order = np.argsort(-np.abs(values), kind="stable")[:top]
    said = []
    for k in order:
        if values[k] == 0:
            continue
        column = attributions.columns[k]
        verb = "raised" if values[k] > 0 else "lowered"
        said.append(f"{column}={_shown(row[column])} {verb} {attributions.explained[index]} by {abs(values[k]):.3g}")
    return said


def _shown(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "(missing)"
    if isinstance(value, (bytes, bytearray)):
        return f"({len(value):,} bytes)"
    if hasattr(value, "source"):  # a file decoded while training (LoadedFile)
        return Path(str(value.source)).name
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    text = str(value)
    if "/" in text and len(text) < 300 and "\n" not in text and Path(text).suffix:  # a file path: its name
        return Path(text).name
    return text if len(text) <= 40 else f"{text[:37]!r}…"


def _rows(rows: Sequence[int] | None, count: int, source: str) -> list[int]:
    if rows is None:
        return list(range(min(count, MAX_ROWS)))
    chosen = [int(r) for r in rows]
    bad = [r for r in chosen if not 0 <= r < count]
    if bad:
        raise DataError(f"{source}: row(s) {', '.join(map(str, bad[:5]))} out of range; it has {count} rows "
                        f"(0 to {count - 1}).")
    if len(chosen) > MAX_ROWS:
        raise DataError(f"{len(chosen)} rows asked for; explain at most {MAX_ROWS} at a time.")
    return chosen


def _targets(outputs: np.ndarray) -> np.ndarray:
    """The class explained: the positive (last) class for two classes, else each row's predicted class."""
    if outputs.shape[1] == 2:
        return np.ones(len(outputs), dtype=np.int64)
    return outputs.argmax(axis=1).astype(np.int64)


def _joined(pieces: list[Attributions]) -> Attributions:
    first = pieces[0]
    if len(pieces) == 1:
        return first
    tokens = {c: [r for p in pieces for r in p.tokens[c]] for c in first.tokens}
    maps = {c: np.concatenate([p.maps[c] for p in pieces]) for c in first.maps}
    backgrounds = {c: np.concatenate([p.backgrounds[c] for p in pieces]) for c in first.backgrounds}
    return Attributions(first.columns, np.concatenate([p.values for p in pieces]),
                        np.concatenate([p.output for p in pieces]), np.concatenate([p.baseline_output for p in pieces]),
                        [e for p in pieces for e in p.explained], first.baselines, tokens, maps, backgrounds)


def parse_rows(text: str | None) -> list[int] | None:
    """`--rows 0,5,10-19` → [0, 5, 10, …, 19]."""
    if not text:
        return None
    rows: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            rows += list(range(int(low), int(high) + 1)) if dash else [int(low)]
        except ValueError:
            raise DataError(f"--rows {text!r}: expected row numbers and ranges such as 0,5,10-19.") from None
    return rows
