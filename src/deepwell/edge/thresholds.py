"""Group-specific decision thresholds (`--mitigate threshold`, fairness/thresholds.py) applied with numpy alone:
the rules, the per-row draw and the group of a row — the one implementation, which the full package uses too.

Per group the rule is an interpolation of two thresholds on the favourable class's probability: with probability
p0 apply `score op0 t0`, else `score op1 t1` (and, for equalised odds, a constant with probability p_ignore). The
coin is drawn from a hash of the row's score and group, so the same row always gets the same answer. A row whose
group has no rule keeps the network's own decision (score > 0.5).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepwell.edge.values import keys

MISSING = "(missing)"  # a missing sensitive value is a group of its own
ROUNDING = 5  # decimals of the score the coin is drawn from


@dataclass(frozen=True)
class GroupRule:
    """One group's interpolated thresholds: P(favourable) = p0·[score op0 t0] + p1·[score op1 t1], mixed with a
    constant prediction at rate p_ignore."""

    p0: float
    operator0: str
    threshold0: float
    p1: float
    operator1: str
    threshold1: float
    p_ignore: float = 0.0
    constant: float = 0.0

    def favourable_probability(self, scores: np.ndarray) -> np.ndarray:
        rule = self.p0 * apply(self.operator0, self.threshold0, scores) + \
            self.p1 * apply(self.operator1, self.threshold1, scores)
        return self.p_ignore * self.constant + (1 - self.p_ignore) * rule


def apply(operator: str, threshold: float, scores: np.ndarray) -> np.ndarray:
    return (scores > threshold) if operator == ">" else (scores < threshold)


def favourable_chosen(rules: dict[str, GroupRule], scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """True where the row gets the favourable outcome: its group's rule, or `score > 0.5` for an unknown group."""
    chosen = scores > 0.5
    draw = row_uniforms(scores, groups)
    for group, rule in rules.items():
        rows = groups == group
        if rows.any():
            chosen[rows] = rule.favourable_probability(scores[rows]) >= draw[rows]
    return chosen


def row_uniforms(scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """A uniform number in [0, 1) per row from its score and group (splitmix64): fixed for a row, spread over rows.
    The score is rounded to 5 decimals first, so runtimes whose probabilities differ in the last float32 bits
    (PyTorch and onnxruntime) draw the same coin."""
    salt = np.array([zlib.crc32(g.encode()) for g in groups], dtype=np.uint64)
    rounded = np.round(np.asarray(scores, dtype=np.float64), ROUNDING)
    x = np.ascontiguousarray(rounded).view(np.uint64) ^ (salt << np.uint64(32))
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def group_of_rows(columns: dict[str, list[Any]], sensitive: list[str]) -> np.ndarray:
    """Each row's group: its value of the one sensitive column, or `col=value & col=value` for several."""
    found = {c: [MISSING if k is None else k for k in keys(columns[c])] for c in sensitive}
    if len(sensitive) == 1:
        return np.array(found[sensitive[0]], dtype=object).astype(str)
    return np.array([" & ".join(f"{c}={v}" for c, v in zip(sensitive, values, strict=True))
                     for values in zip(*(found[c] for c in sensitive), strict=True)], dtype=object).astype(str)


@dataclass
class Thresholds:
    """fairness_thresholds.json as the edge runtime applies it."""

    sensitive: list[str]
    favourable: str
    rules: dict[str, GroupRule]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        return cls(list(data["sensitive"]), str(data["favourable"]),
                   {str(g): GroupRule(**r) for g, r in data["rules"].items()})

    def labels(self, columns: dict[str, list[Any]], classes: list[Any], outputs: np.ndarray,
               errors: list[str | None]) -> list[Any] | None:
        """The labels the rules give (None where a row failed), or None when a sensitive column is absent."""
        if any(c not in columns for c in self.sensitive):
            return None
        names = [str(c) for c in classes]
        favourable = names.index(self.favourable)
        chosen = favourable_chosen(self.rules, np.nan_to_num(outputs[:, favourable]),
                                   group_of_rows(columns, self.sensitive))
        return [None if error is not None else classes[favourable if pick else 1 - favourable]
                for pick, error in zip(chosen, errors, strict=True)]
