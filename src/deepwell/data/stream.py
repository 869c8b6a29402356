"""Tables read in record batches through pyarrow datasets: data larger than memory, never held whole.

A stream is one table file or a folder of them (Parquet, CSV, TSV or JSONL, all one format, Hive-partitioned
folders included). It is read in batches of `batch_rows` rows as DataFrames, as often as a pass needs.
Rows are assigned to train / validation / test by a seeded hash of their values (`hash_split`), so each pass
assigns every row the same split without remembering anything, and equal rows share one split.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepwell.config import SplitConfig
from deepwell.data.io import READERS
from deepwell.errors import DataError

TRAIN, VALIDATION, TEST = 0, 1, 2  # split codes
SPLIT_NAMES = ("train", "validation", "test")
ARROW_BYTES_IN_PANDAS = 2.5
"""How many bytes a pandas frame takes per byte of Arrow data, roughly: strings become Python objects (about
50 bytes each beside their text). Used only to guess whether a table fits in memory."""


@dataclass(frozen=True)
class TableStream:
    path: Path
    kind: str  # parquet | csv | tsv | jsonl
    files: tuple[Path, ...]
    batch_rows: int = 65_536

    @classmethod
    def open(cls, path: str | Path, batch_rows: int = 65_536) -> TableStream:
        """A table file, or a folder whose files are all tables of one format."""
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: does not exist.")
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))) \
            if path.is_dir() else [path]
        kinds = {READERS.get(p.suffix.lower()) for p in files}
        if not files or None in kinds or len(kinds) != 1:
            odd = [p.name for p in files if READERS.get(p.suffix.lower()) is None][:3]
            raise DataError(f"{path}: expected table files of one format ({', '.join(sorted(READERS))}); "
                            + (f"found {odd}." if odd else f"found {sorted(k for k in kinds if k)} mixed."
                               if files else "the folder has no files."))
        return cls(path, kinds.pop(), tuple(files), batch_rows)

    @staticmethod
    def is_table_folder(path: str | Path) -> bool:
        """A folder holding table files only (a Parquet dataset), as opposed to class folders of images."""
        path = Path(path)
        files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))] \
            if path.is_dir() else []
        return bool(files) and all(READERS.get(p.suffix.lower()) for p in files)

    def _dataset(self, schema=None):
        import pyarrow.dataset as ds

        source = str(self.path) if self.path.is_dir() else str(self.files[0])
        partitioning = "hive" if self.path.is_dir() else None
        return ds.dataset(source, format=self._format(schema), partitioning=partitioning,
                          schema=None if self.kind == "parquet" else schema)

    def _format(self, schema=None):
        import pyarrow.csv as pacsv
        import pyarrow.dataset as ds

        if self.kind == "parquet":
            return ds.ParquetFileFormat()
        if self.kind == "jsonl":
            return ds.JsonFileFormat()
        delimiter = "\t" if self.kind == "tsv" else _delimiter(self.files[0])
        types = {} if schema is None else {f.name: f.type for f in schema}
        return ds.CsvFileFormat(parse_options=pacsv.ParseOptions(delimiter=delimiter),
                                convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True))

    def columns(self) -> list[str]:
        return list(self._typed().schema.names)

    def _typed(self):
        """The dataset with a text file's column types fixed from its first rows (numbers as float64, others
        as strings), so a column is read one way in every batch; Parquet keeps its own schema."""
        if self.kind == "parquet":
            return self._dataset()
        import pyarrow as pa

        fields = [pa.field(f.name, pa.float64() if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
                           else pa.bool_() if pa.types.is_boolean(f.type) else pa.string())
                  for f in self._head_schema()]
        return self._dataset(pa.schema(fields))

    def _head_schema(self):
        """The types pyarrow infers from the first file's first block (1 MiB), read on one thread."""
        import pyarrow.csv as pacsv
        import pyarrow.json as pajson

        first = self.files[0]
        try:
            if self.kind == "jsonl":
                reader = pajson.open_json(first, read_options=pajson.ReadOptions(use_threads=False))
            else:
                delimiter = "\t" if self.kind == "tsv" else _delimiter(first)
                reader = pacsv.open_csv(first, read_options=pacsv.ReadOptions(use_threads=False),
                                        parse_options=pacsv.ParseOptions(delimiter=delimiter))
            return reader.schema
        except Exception as exc:  # pyarrow's own error types
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"{first}: cannot be read as {self.kind}: {first_line}") from None

    def batches(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """The table's rows in order, `batch_rows` at most per frame."""
        dataset = self._typed()
        scanner = dataset.scanner(columns=columns, batch_size=self.batch_rows, use_threads=True,
                                  batch_readahead=2, fragment_readahead=1)  # pyarrow's 16 and 4 hold ~100 MB
        try:
            for batch in scanner.to_batches():
                if batch.num_rows:
                    yield batch.to_pandas()
        except Exception as exc:  # pyarrow's own error types: a value that does not fit its column's type
            if isinstance(exc, DataError):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"{self.path}: cannot be read as {self.kind}: {first}. A text file's column types "
                            "come from its first rows; declare the column's type in the config, or fix the "
                            "value.") from None

    def head(self, rows: int) -> pd.DataFrame:
        """The first `rows` rows (types and the task are inferred from them)."""
        parts, have = [], 0
        for frame in self.batches():
            parts.append(frame.iloc[: rows - have])
            have += len(parts[-1])
            if have >= rows:
                break
        if not parts:
            raise DataError(f"{self.path}: the table has no data rows.")
        return pd.concat(parts, ignore_index=True)

    def read(self) -> pd.DataFrame:
        """The whole table as one DataFrame (a table folder read into memory: data.streaming never)."""
        frames = list(self.batches())
        if not frames:
            raise DataError(f"{self.path}: the table has no data rows.")
        return pd.concat(frames, ignore_index=True)

    def row_count(self) -> int | None:
        """The table's rows, where its files say so without being read (Parquet's metadata); else None."""
        if self.kind != "parquet":
            return None
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(file).metadata.num_rows for file in self.files)

    def memory_estimate(self) -> int:
        """Bytes the table would take as one DataFrame, roughly (Parquet: its uncompressed size)."""
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            arrow = 0
            for file in self.files:
                meta = pq.ParquetFile(file).metadata
                arrow += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        else:
            arrow = sum(p.stat().st_size for p in self.files)
        return int(arrow * ARROW_BYTES_IN_PANDAS)


def _delimiter(path: Path) -> str:
    with path.open("r", encoding="utf-8", errors="replace") as f:
        header = f.readline()
    return ";" if header.count(";") > header.count(",") else ","


def hash_split(frame: pd.DataFrame, split: SplitConfig, seed: int) -> np.ndarray:
    """Each row's split code (TRAIN / VALIDATION / TEST): a seeded 64-bit hash of the row's values, read as a
    number in [0, 1), against the split fractions. The same row gets the same split in every pass and every
    batch size; the shares match the fractions up to sampling noise (no stratification: with the row counts
    that need streaming, a class's share varies by well under a point)."""
    if split.column is not None:
        return split_codes(frame[split.column], split.column)
    return fraction_codes(hash_unit(frame, seed), split)


def fraction_codes(unit: np.ndarray, split: SplitConfig) -> np.ndarray:
    """Split codes of numbers in [0, 1) against the split fractions."""
    total = split.train + split.validation + split.test
    edges = np.array([split.train, split.train + split.validation]) / total
    return np.searchsorted(edges, unit, side="right").astype(np.int8)


def hash_unit(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """A number in [0, 1) per row, from its values and `seed` alone."""
    key = f"{seed % 10**16:016d}"
    hashed = pd.util.hash_pandas_object(frame, index=False, hash_key=key).to_numpy(np.uint64)
    return (hashed >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def split_codes(values: pd.Series, column: str) -> np.ndarray:
    """A split column's values (train / validation / test and their usual spellings) as split codes."""
    from deepwell.data.split import _SPLIT_NAMES

    names = values.astype("string").str.strip().str.lower().map(_SPLIT_NAMES)
    bad = names.isna()
    if bad.any():
        examples = sorted({str(v) for v in values[bad].head(20)})[:5]
        raise DataError(f"split column {column!r} holds {examples}; expected train, validation or test.")
    return names.map({name: code for code, name in enumerate(SPLIT_NAMES)}).to_numpy(np.int8)
