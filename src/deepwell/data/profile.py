"""The data profile kept with a run (profile.json): what the columns held and how they were used."""

from __future__ import annotations

from typing import Any

import pandas as pd

from deepwell.config import Config
from deepwell.data.inference import profile_table
from deepwell.data.split import Splits


def run_profile(frame: pd.DataFrame, config: Config, splits: Splits) -> dict[str, Any]:
    """Columns (inferred type, the type used, missing and distinct counts, examples) and, for
    classification, rows per class in each split."""
    columns = []
    for column in profile_table(frame, config.target):
        row = column.as_dict()
        used = config.columns.get(column.name)
        row["inferred"] = row["type"]
        row["type"] = "target" if column.name == config.target else (used.type if used else "ignore")
        columns.append(row)
    profile: dict[str, Any] = {"rows": len(frame), "columns": columns}
    if not config.task.is_regression:
        profile["class_balance"] = {
            name: part[config.target].astype(str).value_counts().sort_index().to_dict()
            for name, part in (("train", splits.train), ("validation", splits.validation), ("test", splits.test))
            if len(part)}
    return profile
