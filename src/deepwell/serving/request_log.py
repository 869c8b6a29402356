"""The server's request log: a local SQLite file, size-capped, written by one thread (`recorder.py`).

Each predicted row keeps its inputs as received (a text up to 10,000 characters; a file as its size and drift
measures, never its bytes) and its outputs; `deepwell monitor --log` measures them as it would a table and
compares them with the model's reference. When the file passes its cap the oldest tenth of the rows is deleted
(SQLite reuses their pages, so the file stops growing). WAL mode: a reader (`deepwell monitor`) never blocks the server.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepwell.errors import DataError

TEXT_LIMIT = 10_000
SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, time REAL NOT NULL, rows INTEGER NOT NULL,
                                     latency_ms REAL NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (id INTEGER PRIMARY KEY, request INTEGER NOT NULL, inputs TEXT NOT NULL,
                                        outputs TEXT NOT NULL);
"""


def default_log_path(model: str, name: str) -> Path:
    """Beside the model: `RUN/requests.sqlite` for a run folder, `FOLDER-requests.sqlite` next to a model
    folder, `./NAME-requests.sqlite` for a registry URI. `deepwell serve` and `deepwell monitor` agree on it."""
    if model.startswith("models:/"):
        return Path.cwd() / f"{name}-requests.sqlite"
    folder = Path(model)
    if (folder / "model").is_dir():
        return folder / "requests.sqlite"
    return folder.resolve().with_name(f"{folder.resolve().name}-requests.sqlite")


class RequestLog:
    def __init__(self, path: Path, max_bytes: int = 100 * 2**20) -> None:
        self.path, self.max_bytes = Path(path), max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)  # workers share one file
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL: no fsync per commit, still safe if the server dies
        self.db.executescript(SCHEMA)

    def append(self, entries: list[tuple[float, float, list[dict], list[dict]]]) -> None:
        """(time, latency in seconds, inputs and outputs per row) per request, in one transaction."""
        with self.db:
            for when, latency, inputs, outputs in entries:
                cursor = self.db.execute("INSERT INTO requests (time, rows, latency_ms) VALUES (?, ?, ?)",
                                         (when, len(inputs), latency * 1000))
                self.db.executemany("INSERT INTO predictions (request, inputs, outputs) VALUES (?, ?, ?)",
                                    [(cursor.lastrowid, _json(i), _json(o))
                                     for i, o in zip(inputs, outputs, strict=True)])
        self._cap()

    def _cap(self) -> None:
        pages, size = (self.db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size"))
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        if (pages - free) * size <= self.max_bytes:
            return
        with self.db:
            low, high = self.db.execute("SELECT MIN(id), MAX(id) FROM predictions").fetchone()
            cut = low + max(1, (high - low + 1) // 10)
            self.db.execute("DELETE FROM predictions WHERE id < ?", (cut,))
            self.db.execute("DELETE FROM requests WHERE id < (SELECT COALESCE(MIN(request), 1 << 62) "
                            "FROM predictions)")

    def close(self) -> None:
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.close()


def read_log(path: Path, last: int | None = None) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The logged rows (the latest `last`), oldest first: their inputs as a table and their outputs."""
    if not Path(path).is_file():
        raise DataError(f"{path}: no request log here. `deepwell serve` writes one beside the model unless run "
                        "with --no-log; pass --log PATH for another place, or --data FILE to check a table.")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            query = "SELECT inputs, outputs FROM predictions ORDER BY id DESC"
            rows = db.execute(query + (" LIMIT ?" if last else ""), (last,) if last else ()).fetchall()
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{path}: not a deepwell request log ({exc}).") from None
    rows.reverse()
    return (pd.DataFrame.from_records([json.loads(i) for i, _ in rows]), [json.loads(o) for _, o in rows])


def request_count(path: Path) -> tuple[int, int]:
    """Requests and predicted rows in a log (tests and `deepwell monitor` print them)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return (db.execute("SELECT COUNT(*) FROM requests").fetchone()[0],
                db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])


def loggable(value: Any) -> Any:
    """A JSON-safe, bounded stand-in for one input value."""
    if isinstance(value, (bytes, bytearray)):
        return {"file_bytes": len(value)}
    if isinstance(value, dict):  # a file's summary (`monitoring.measures.file_summary`) or a class's probability
        return {str(k): loggable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str) and len(value) > TEXT_LIMIT:
        return value[:TEXT_LIMIT] + "…"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)[:TEXT_LIMIT]


def _json(row: dict[str, Any]) -> str:
    return json.dumps({k: loggable(v) for k, v in row.items()}, ensure_ascii=False)
