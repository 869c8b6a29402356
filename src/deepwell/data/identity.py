"""What data a run was trained on: a file's (or folder listing's) sha256, or a DataFrame's content hash.

A resumed run checks it, so a run is never continued on different data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from deepwell.data.io import TableLike, file_sha256


@dataclass(frozen=True)
class DataIdentity:
    path: str | None  # resolved file or folder path; None for a DataFrame
    digest: str  # sha256 of the file / folder listing, or the DataFrame's hash

    @classmethod
    def of(cls, data: TableLike, frame: pd.DataFrame) -> DataIdentity:
        if isinstance(data, (str, Path)):
            return cls(str(Path(data).resolve()), content_hash(data))
        return cls(None, frame_hash(frame))

    def to_dict(self) -> dict[str, Any]:
        """run.json's `data` entry: {"path", "sha256"} for files, {"path": null, "hash"} for DataFrames."""
        return {"path": self.path, "sha256": self.digest} if self.path else {"path": None, "hash": self.digest}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataIdentity | None:
        digest = data.get("sha256") or data.get("hash")
        return cls(data.get("path"), digest) if digest else None


def content_hash(data: str | Path) -> str:
    """A file's sha256, or for a folder the hash of its file listing (names, sizes, modification times)."""
    path = Path(data)
    if not path.is_dir():
        return file_sha256(path)
    listing = sorted(f"{p.relative_to(path)}\t{p.stat().st_size}\t{p.stat().st_mtime_ns}"
                     for p in path.rglob("*") if p.is_file())
    return hashlib.sha256("\n".join(listing).encode()).hexdigest()


def frame_hash(frame: pd.DataFrame) -> str:
    return str(int(pd.util.hash_pandas_object(frame, index=False).sum()))
