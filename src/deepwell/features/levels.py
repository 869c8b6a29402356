"""A number's levels: each frequent value of a number column embedded as a category, beside the number itself.

Some numbers are labels in disguise: a fishing site's catch rate, a town's tax rate, a product code. Their few
values repeat across rows, and what matters is which value a row holds, not how large it is; a smooth function of
the number blurs neighbouring values together. The column keeps its NumberFeature and gains this one, keyed
`<column>#levels`. Values are keyed as numbers (1, 1.0 and "1" are one level); unseen values go to the unknown
bucket.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepwell.edge.values import value_key
from deepwell.features.category import CategoryFeature
from deepwell.features.number import to_numbers
from deepwell.features.summaries import Counts

LEVELS_SUFFIX = "#levels"  # the network input of a number column's levels


def level_keys(values: pd.Series, column: str, strict: bool = False) -> pd.Series:
    """Each number's canonical key (None where missing)."""
    numbers = to_numbers(values, column, strict).to_numpy(dtype=np.float64)
    return pd.Series([None if np.isnan(x) else value_key(x) for x in numbers], index=values.index, dtype=object)


class NumberLevelsFeature(CategoryFeature):
    type = "levels"

    def summarise(self, values: pd.Series) -> Counts:
        return Counts.of(level_keys(values, self.name))

    def transform(self, values: pd.Series, strict: bool = False) -> np.ndarray:
        return self._indices(level_keys(values, self.name, strict))
