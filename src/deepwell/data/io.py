"""Read a table file (CSV, TSV, Parquet, JSONL) into a DataFrame with clear errors for bad files."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd

from deepwell.errors import DataError, listing

TableLike = pd.DataFrame | str | Path | dict[str, Any] | list[dict[str, Any]]
"""What the Python API accepts as a table."""


def as_frame(data: TableLike, what: str = "data") -> tuple[pd.DataFrame, str]:
    """(table, name for messages) from a DataFrame, a file path, one record or a list of records."""
    if isinstance(data, pd.DataFrame):
        return data, what
    if isinstance(data, (str, Path)):
        return read_table(data), str(data)
    if isinstance(data, dict):
        return pd.DataFrame([data]), what
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return pd.DataFrame(data), what
    raise DataError(f"{what}: expected a pandas DataFrame, a table file path, a dict or a list of dicts; "
                    f"got {type(data).__name__}.")


READERS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def read_table(path: str | Path) -> pd.DataFrame:
    """Load a table by its extension; the error names the file and what was expected."""
    path = Path(path)
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        supported = ", ".join(sorted(READERS))
        raise DataError(f"{path}: unsupported file type {path.suffix or '(no extension)'!r}; "
                        f"deepwell reads tables with extension {supported}.")
    if not path.exists():
        raise DataError(f"{path}: file does not exist.")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected a table file ({kind}).")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (0 bytes); expected a {kind} table with a header and rows.")
    try:
        if kind == "csv":
            frame = pd.read_csv(path, sep=";" if _looks_semicolon(path) else ",", skipinitialspace=True)
        elif kind == "tsv":
            frame = pd.read_csv(path, sep="\t")
        elif kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_json(path, lines=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file has no columns; expected a {kind} table with a header row.") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                        f"save the file as UTF-8 {kind}.") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot be read as {kind}: {first}") from None
    except Exception as exc:  # pyarrow raises its own types for damaged Parquet files
        raise DataError(f"{path}: cannot be read as {kind}: {type(exc).__name__}: {exc}") from None
    if frame.shape[1] == 0 or len(frame) == 0:
        raise DataError(f"{path}: the table has no data rows; expected a header and at least one row.")
    frame.columns = [str(c).strip() for c in frame.columns]
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise DataError(f"{path}: column names repeat ({listing(duplicated)}); make them unique.")
    return frame


def _looks_semicolon(path: Path) -> bool:
    """European CSVs use ';' — sniff the header line so they are not read as a single column."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            header = f.readline()
    except OSError:
        return False
    return header.count(";") > header.count(",")


def file_sha256(path: str | Path) -> str:
    """Content hash, recorded in a run so a resume can refuse data that changed underneath it."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write by extension (CSV, TSV, Parquet, JSONL), atomically, so a failed write keeps the old file."""
    from deepwell.runs.files import atomic_path

    path = Path(path)
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: cannot write {path.suffix or 'a file without extension'!r}; "
                        f"use one of {', '.join(sorted(READERS))}.")
    if not path.parent.exists():
        raise DataError(f"{path}: folder {path.parent} does not exist.")
    with atomic_path(path) as tmp:
        if kind == "csv":
            frame.to_csv(tmp, index=False)
        elif kind == "tsv":
            frame.to_csv(tmp, sep="\t", index=False)
        elif kind == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_json(tmp, orient="records", lines=True)
