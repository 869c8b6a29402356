"""Tables without pandas: a CSV, TSV or JSONL file, one record or a list of records → columns of Python values,
as the full package's pandas reading hands them to the features (a CSV column of numbers parsed as numbers, the
same spellings of a missing value), and the canonical key a category is looked up by.

Only the standard library and numpy: this module is part of the edge runtime (see `deepwell.edge`).
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NA_STRINGS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                        "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})  # pandas' read_csv
TRUE_STRINGS, FALSE_STRINGS = frozenset({"True", "TRUE", "true"}), frozenset({"False", "FALSE", "false"})
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".jsonl": None, ".ndjson": None}


class EdgeError(ValueError):
    """Input the model cannot use, explained in the message (the file, column or row, and what was expected);
    the same words as the full package's DataError."""


class EdgeWarning(UserWarning):
    """Something to know that does not stop the prediction (columns the model does not use)."""


def listing(values: Iterable[object], shown: int = 8) -> str:
    """A few values for a message and a count of the rest: "'a', 'b', 'c' and 12 more"."""
    values = list(values)
    head = ", ".join(repr(v) for v in values[:shown])
    return head + (f" and {len(values) - shown} more" if len(values) > shown else "")


@dataclass
class Table:
    """Columns of equal length; `source` names the table in messages, `base_dir` anchors relative file paths."""

    columns: dict[str, list[Any]]
    rows: int
    source: str = "data"
    base_dir: Path | None = None

    def row_name(self, row: int) -> str:
        """How a person finds row `row`: its line in a CSV/TSV (after the header) or JSONL file, else its index."""
        suffix = Path(self.source).suffix.lower()
        if suffix in (".csv", ".tsv", ".tab", ".txt"):
            return f"line {row + 2}"
        if suffix in (".jsonl", ".ndjson"):
            return f"line {row + 1}"
        return f"row {row}"


def read(data: Any, what: str = "data") -> Table:
    """A table from a file path, one record ({column: value}), a list of records, or a DataFrame where pandas is
    installed (read through its `to_dict("records")`; the edge runtime never imports pandas itself)."""
    if isinstance(data, (str, Path)):
        return read_file(Path(data))
    if callable(getattr(data, "to_dict", None)) and not isinstance(data, dict):
        data = data.to_dict("records")
    if isinstance(data, dict):
        data = [data]
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return Table(_columns_of(data), len(data), what)
    raise EdgeError(f"{what}: expected a table file path, a dict, a list of dicts or a DataFrame; got "
                    f"{type(data).__name__}.")


def read_file(path: Path) -> Table:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        raise EdgeError(f"{path}: the edge runtime reads CSV, TSV and JSONL tables (Parquet needs pyarrow); "
                        "convert the file, or predict with the full package.")
    if suffix not in TABLE_SUFFIXES:
        raise EdgeError(f"{path}: unsupported file type {suffix or '(no extension)'!r}; the edge runtime reads "
                        f"tables with extension {', '.join(sorted(TABLE_SUFFIXES))}.")
    if not path.is_file():
        raise EdgeError(f"{path}: file does not exist." if not path.exists() else f"{path}: is a folder; expected a "
                        "table file.")
    if path.stat().st_size == 0:
        raise EdgeError(f"{path}: file is empty (0 bytes); expected a table with a header and rows.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EdgeError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8.") from None
    delimiter = TABLE_SUFFIXES[suffix]
    columns = _jsonl(text, path) if delimiter is None else _csv(text, path, delimiter)
    rows = len(next(iter(columns.values()), []))
    if not columns or rows == 0:
        raise EdgeError(f"{path}: the table has no data rows; expected a header and at least one row.")
    return Table(columns, rows, str(path), path.parent)


def _csv(text: str, path: Path, delimiter: str) -> dict[str, list[Any]]:
    lines = text.splitlines()
    if delimiter == "," and lines and lines[0].count(";") > lines[0].count(","):
        delimiter = ";"  # European CSV, as the full package sniffs it
    records = list(csv.reader(lines, delimiter=delimiter, skipinitialspace=delimiter != "\t"))
    if not records or not records[0]:
        raise EdgeError(f"{path}: file has no columns; expected a table with a header row.")
    header = [name.strip() for name in records[0]]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise EdgeError(f"{path}: column names repeat ({listing(repeated)}); make them unique.")
    body = [r for r in records[1:] if r]
    for line, record in enumerate(body, start=2):
        if len(record) > len(header):
            raise EdgeError(f"{path}: cannot be read as csv: Expected {len(header)} fields in line {line}, "
                            f"saw {len(record)}")
    return {name: _typed([r[i] if i < len(r) else "" for r in body]) for i, name in enumerate(header)}


def _typed(texts: list[str]) -> list[Any]:
    """A CSV column as pandas types it: missing spellings → None; then ints, floats or booleans when every
    present value is one; strings otherwise."""
    values: list[Any] = [None if t in NA_STRINGS else t for t in texts]
    present = [v for v in values if v is not None]
    for parse in (_int, float, _bool):
        try:
            parsed = [parse(v.strip()) for v in present]
        except ValueError:
            continue
        it = iter(parsed)
        return [None if v is None else next(it) for v in values]
    return values


def _int(text: str) -> int:
    if "_" in text or "." in text:
        raise ValueError(text)
    return int(text)


def _bool(text: str) -> bool:
    if text in TRUE_STRINGS or text in FALSE_STRINGS:
        return text in TRUE_STRINGS
    raise ValueError(text)


def _jsonl(text: str, path: Path) -> dict[str, list[Any]]:
    records = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EdgeError(f"{path}: cannot be read as jsonl: line {line} is not JSON ({exc.msg}).") from None
        if not isinstance(record, dict):
            raise EdgeError(f"{path}: cannot be read as jsonl: line {line} is not a JSON object.")
        records.append(record)
    return _columns_of(records)


def _columns_of(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    names = list(dict.fromkeys(str(k).strip() for record in records for k in record))
    return {name: [_missing_as_none(r.get(name)) for r in records] for name in names}


def _missing_as_none(value: Any) -> Any:
    return None if is_missing(value) else value


def is_missing(value: Any) -> bool:
    """None, NaN or NaT (numpy's or pandas', without importing pandas)."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return value != value
    if isinstance(value, np.datetime64):
        return bool(np.isnat(value))
    return type(value).__name__ in ("NAType", "NaTType")


def value_key(value: Any) -> str:
    """Canonical string for a categorical value, so 1, 1.0 and '1' from different files agree."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value).strip()


def keys(values: list[Any]) -> list[str | None]:
    """value_key over a column; missing values and blank strings become None."""
    return [None if is_missing(v) else value_key(v) or None for v in values]


def numbers(values: list[Any], column: str, row_name: Callable[[int], str], source: str) -> np.ndarray:
    """float64 with NaN for missing; a value that is not a number is refused with the rows that hold one."""
    out = np.full(len(values), np.nan)
    bad: list[int] = []
    for i, value in enumerate(values):
        if is_missing(value):
            continue
        if isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
            out[i] = float(value)
            continue
        text = str(value).strip()
        if not text:
            continue
        try:
            if "_" in text:
                raise ValueError(text)
            out[i] = float(text)
        except ValueError:
            bad.append(i)
    if bad:
        raise wrong_values(column, "numbers", [(i, values[i]) for i in bad], source, row_name)
    return out


def wrong_values(column: str, expected: str, bad: list[tuple[int, Any]], source: str,
                 row_name: Callable[[int], str]) -> EdgeError:
    """The full package's WrongValues message, located in the file: five examples and a count of the rest."""
    shown = ", ".join(f"{row_name(row)}: {value!r}" for row, value in bad[:5])
    more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
    return EdgeError(f"{source}: Column {column!r} expects {expected}, but {len(bad)} value(s) are not: "
                     f"{shown}{more}.")


def warn_extra(table: Table, used: list[str], target: str) -> None:
    extra = [c for c in table.columns if c not in used and c != target]
    if extra:
        shown = ", ".join(map(repr, extra[:10])) + (" …" if len(extra) > 10 else "")
        warnings.warn(f"{table.source}: ignoring {len(extra)} column(s) the model does not use: {shown}.",
                      EdgeWarning, stacklevel=3)


def finite(value: float) -> float | None:
    """A float for JSON: NaN and infinities become None."""
    return value if math.isfinite(value) else None
