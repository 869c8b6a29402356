"""One error hierarchy: every problem a user can cause is a DeepwellError with a readable message.

The CLI catches DeepwellError in one place, prints the message and exits with code 2; anything else
is a bug in deepwell and keeps its traceback.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable


class DeepwellError(Exception):
    """Base class: a problem with the user's data, config or files, explained in the message."""


class DataError(DeepwellError, ValueError):
    """The data file or table cannot be used as given (missing, unreadable, wrong columns or values).
    Also a ValueError, as scikit-learn and most Python code expect of bad input."""


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
