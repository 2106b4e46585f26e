"""The error hierarchy: every failure a user can cause maps to one class and one exit code.

The CLI catches `PropensityError` and prints its message on one line; anything else is a bug and
keeps its traceback. Exit codes are part of the public contract for schedulers:

====  =====================================================
code  meaning
====  =====================================================
0     ok
2     bad input: data contract, config, not enough data, an output place that cannot be
      written (a folder that is a file, no permission, a full disk)
3     model or feature-spec mismatch, model not found
4     drift above the configured limit (with --fail-on-drift)
5     tracking store unreachable
====  =====================================================
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "ConfigError",
    "DataContractError",
    "DriftError",
    "InsufficientDataError",
    "ModelError",
    "OutputError",
    "PropensityError",
    "PropensityWarning",
    "TrackingError",
    "redact",
    "shorten",
]

# Loose on purpose: anything shaped like an address is hidden, at the price of an odd false hit.
EMAIL = re.compile(r"[\w.+%-]+@[\w-]+(\.[\w-]+)+")


def redact(text: str) -> str:
    """`text` with every email address replaced by ``<email>`` (for messages and examples).

    >>> redact("user ann@acme.com appears twice")
    'user <email> appears twice'
    """
    return EMAIL.sub("<email>", str(text))


def shorten(text: str, limit: int = 80) -> str:
    """`text` cut to `limit` characters with the cut said, so no message echoes a whole input.

    >>> shorten("x" * 100, 10)
    'xxxxxxxxxx... (100 characters)'
    """
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


class PropensityError(Exception):
    """Base class of the errors a user can cause and fix; carries an exit code."""

    exit_code: int = 2


class ConfigError(PropensityError):
    """The configuration file is missing, malformed, or holds a bad value."""


class DataContractError(PropensityError):
    """One or more input tables break the data contract.

    Every problem is collected before raising, so a user fixes them all in one go.
    """

    def __init__(self, problems: Sequence[str], failure_cases: Any = None) -> None:
        self.problems = list(problems)
        # the failing rows (a pandas frame), when the problem is with rows of a table
        self.failure_cases = failure_cases
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"{len(self.problems)} problems with the input data:\n{lines}"
        super().__init__(message)


class OutputError(PropensityError):
    """An output cannot be written where it was asked: a folder that is a file, no permission,
    a read-only place, or a disk that filled up. Nothing partial is left behind."""


class InsufficientDataError(PropensityError):
    """Too few rows or too few examples of a class to train or evaluate honestly."""


class ModelError(PropensityError):
    """The model is missing, or it does not match the feature spec the code computes."""

    exit_code = 3


class DriftError(PropensityError):
    """Scoring data drifted beyond the configured limit and the caller asked to fail on it."""

    exit_code = 4


class TrackingError(PropensityError):
    """The MLflow tracking store cannot be reached or refused a write."""

    exit_code = 5


class PropensityWarning(UserWarning):
    """Something the user should know and may want to fix, that does not stop the job.

    The CLI prints each one on its own ``warning:`` line; tests turn them into errors unless
    they expect them.
    """
