"""Argument types of the command line: each rejects bad values with a clear message.

Examples
--------
>>> from evostrat.cli.types import positive_int
>>> positive_int("3")
3
>>> positive_int("0")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: expected a positive integer, got '0'
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

__all__ = ["positive_int", "nonnegative_int", "positive_float", "finite_float", "nonnegative_float", "strategy_option"]


def _int_at_least(text: str, low: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int_at_least(text, 1, "a positive integer")


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (a seed)."""
    return _int_at_least(text, 0, "an integer >= 0")


def finite_float(text: str) -> float:
    """A finite real number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    if finite_float(text) <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return float(text)


def nonnegative_float(text: str) -> float:
    """A finite number >= 0."""
    if finite_float(text) < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return float(text)


def strategy_option(text: str) -> tuple[str, Any]:
    """``NAME=VALUE``: a strategy's hyper-parameter, ``VALUE`` read as JSON (numbers, ``true``,
    ``null``, lists, objects) and otherwise taken as a string.

    Examples
    --------
    >>> strategy_option("lr_mean=0.5"), strategy_option("distribution=laplace")
    (('lr_mean', 0.5), ('distribution', 'laplace'))
    >>> strategy_option('distribution_options={"df": 3}')
    ('distribution_options', {'df': 3})
    """
    name, equals, value = text.partition("=")
    if not equals or not name.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with NAME a hyper-parameter's name, got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    except RecursionError:
        raise argparse.ArgumentTypeError(f"expected a value nested less deeply, got {text[:60]!r}...") from None
    if isinstance(parsed, float) and not math.isfinite(parsed):  # NaN, Infinity: JSON would not store them
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return name.strip(), parsed
