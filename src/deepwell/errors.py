"""One error hierarchy: every problem a user can cause is a DeepwellError with a readable message.

The CLI catches DeepwellError in one place, prints the message and exits with code 2; anything else
is a bug in deepwell and keeps its traceback.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Iterable
from typing import Any


class DeepwellError(Exception):
    """Base class: a problem with the user's data, config or files, explained in the message."""


class DataError(DeepwellError, ValueError):
    """The data file or table cannot be used as given (missing, unreadable, wrong columns or values).
    Also a ValueError, as scikit-learn and most Python code expect of bad input."""


class WrongValues(DataError):
    """Values of one column that are not what the column holds. The message names rows by their index; whoever
    knows the file re-words it with `located` (line numbers of a CSV, say)."""

    def __init__(self, column: str, expected: str, examples: list[tuple[Any, Any]], count: int) -> None:
        self.column, self.expected, self.examples, self.count = column, expected, examples, count
        super().__init__(self.describe(lambda row: f"row {row}"))

    def describe(self, name_row: Callable[[Any], str]) -> str:
        shown = ", ".join(f"{name_row(row)}: {value!r}" for row, value in self.examples)
        more = f" (and {self.count - len(self.examples)} more)" if self.count > len(self.examples) else ""
        return f"Column {self.column!r} expects {self.expected}, but {self.count} value(s) are not: {shown}{more}."

    def located(self, source: str, name_row: Callable[[Any], str]) -> DataError:
        return DataError(f"{source}: {self.describe(name_row)}")


class ConfigError(DeepwellError, ValueError):
    """The configuration (YAML or arguments) is invalid or contradicts the data. Also a ValueError."""


class ModelFileError(DeepwellError):
    """A saved model or run folder is missing, damaged or incomplete."""


class DeepwellWarning(UserWarning):
    """Something the user should know that does not stop the work (extra columns, dropped columns)."""


def warn(message: str) -> None:
    warnings.warn(message, DeepwellWarning, stacklevel=3)


def closest_names(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Names that look like `name`, for 'did you mean' hints (case-insensitive match first)."""
    candidates = list(candidates)
    exact = [c for c in candidates if c.lower() == name.lower()]
    fuzzy = difflib.get_close_matches(name.lower(), [c.lower() for c in candidates], n=n, cutoff=0.5)
    by_lower = {c.lower(): c for c in candidates}
    out = exact + [by_lower[f] for f in fuzzy if by_lower[f] not in exact]
    return out[:n]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = closest_names(name, candidates)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def listing(values: Iterable[object], shown: int = 8, quote: bool = True) -> str:
    """A few values for a message and a count of the rest: "'a', 'b', 'c' and 12 more"."""
    values = list(values)
    head = ", ".join(repr(v) if quote else str(v) for v in values[:shown])
    return head + (f" and {len(values) - shown} more" if len(values) > shown else "")
