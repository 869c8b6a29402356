"""Groups for a bias audit: one sensitive column, or the intersection of several ("sex=Female & race=Black")."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from deepwell.errors import DataError, did_you_mean, listing
from deepwell.features.base import keys_of

MISSING = "(missing)"


def group_labels(frame: pd.DataFrame, columns: Sequence[str], source: str = "the data") -> pd.Series:
    """Each row's group: its value of the one sensitive column, or `col=value & col=value` for several. A missing
    value is a group of its own, so rows without it are audited too, not dropped."""
    if not columns:
        raise DataError("A bias audit needs at least one sensitive column (--sensitive COL).")
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        hints = "".join(did_you_mean(c, frame.columns) for c in absent)
        raise DataError(f"{source}: sensitive column(s) {listing(absent)} not in the table.{hints} "
                        f"Columns: {listing(frame.columns)}.")
    keys = {c: keys_of(frame[c]).fillna(MISSING) for c in columns}
    if len(columns) == 1:
        return keys[columns[0]].astype(str).rename(columns[0])
    joined = [" & ".join(f"{c}={v}" for c, v in zip(columns, values, strict=True))
              for values in zip(*(keys[c] for c in columns), strict=True)]
    return pd.Series(joined, index=frame.index, name=" & ".join(columns))
