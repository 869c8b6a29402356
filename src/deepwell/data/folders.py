"""A folder sorted by class (`photos/cat/1.png`, `photos/dog/2.png`) becomes a table of paths and labels.

`train/`, `val/` (or `validation/`) and `test/` sub-folders, when present, become a `split` column, so
the rest of deepwell treats a folder exactly like a table with a path column.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deepwell.data.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
from deepwell.errors import DataError, listing, warn

SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "validation", "valid": "validation",
                 "validation": "validation", "test": "test"}
TARGET = "label"
SPLIT = "split"


def folder_table(root: str | Path) -> tuple[pd.DataFrame, str]:
    """(table with a path column named `image` or `audio`, a `label` column and maybe `split`; modality)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder.")
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    split_dirs = [p for p in subfolders if p.name.lower() in SPLIT_FOLDERS]
    parts = [(SPLIT_FOLDERS[p.name.lower()], p) for p in split_dirs] if split_dirs else [(None, root)]
    rows, empty = [], []
    for split, folder in parts:
        classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise DataError(f"{folder}: expected one sub-folder per class (e.g. {folder}/cat/, {folder}/dog/), "
                            "found none.")
        for class_dir in classes:
            files = sorted(p for p in class_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not files:
                empty.append(str(class_dir))
            rows += [{"path": f, TARGET: class_dir.name, SPLIT: split} for f in files]
    if empty:
        warn(f"{root}: empty class folder(s) skipped: {listing(empty)}.")
    if not rows:
        raise DataError(f"{root}: no files in its class folders.")
    table = pd.DataFrame(rows)
    suffixes = table["path"].map(lambda p: p.suffix.lower())
    image_share, audio_share = suffixes.isin(IMAGE_EXTENSIONS).mean(), suffixes.isin(AUDIO_EXTENSIONS).mean()
    modality = "image" if image_share >= audio_share else "audio"
    if max(image_share, audio_share) == 0:
        raise DataError(f"{root}: no image ({', '.join(sorted(IMAGE_EXTENSIONS))}) or audio "
                        f"({', '.join(sorted(AUDIO_EXTENSIONS))}) files in its class folders.")
    table = table.rename(columns={"path": modality})
    table[modality] = table[modality].map(str)
    if not split_dirs:
        table = table.drop(columns=SPLIT)
    return table, modality


def files_table(root: str | Path, column: str) -> pd.DataFrame:
    """Every file under `root` (any depth) as a one-column table of paths, for prediction."""
    root = Path(root)
    files = sorted(str(p) for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(f"{root}: the folder holds no files to predict.")
    return pd.DataFrame({column: files})
