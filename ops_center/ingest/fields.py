"""Field validators for CloudEvent attributes and event data.

Each validator takes the raw JSON value and returns the normalised value, or raises
`FieldError` with a short English detail. They are pure functions with no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

Validator = Callable[[Any], Any]

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-/]{0,63}")
_PERIOD = re.compile(r"(\d{4})(?:-(0[1-9]|1[0-2])|-Q([1-4])|-H([12]))?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)


class FieldError(ValueError):
    """A value that does not fit its field; the message is the detail shown to clients."""


def text(max_length: int = 200) -> Validator:
    """A non-empty string of at most `max_length` characters, stripped."""

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise FieldError("must be a string")
        stripped: str = value.strip()
        if not stripped:
            raise FieldError("must not be empty")
        if "\x00" in stripped:
            raise FieldError("must not contain NUL characters")
        if len(stripped) > max_length:
            raise FieldError(f"must be at most {max_length} characters")
        return stripped

    return check


def code(value: Any) -> str:
    """A stable code: 1-64 characters of letters, digits and ``. _ : - /``."""
    if not isinstance(value, str):
        raise FieldError("must be a string")
    if not _CODE.fullmatch(value):
        raise FieldError(
            "must be 1-64 letters, digits or . _ : - / starting with a letter or digit"
        )
    return value


def one_of(*choices: str) -> Validator:
    """One of the given strings, exactly."""
    allowed = frozenset(choices)
    listing = ", ".join(choices)

    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise FieldError(f"must be one of {listing}")
        return value

    return check


def boolean(value: Any) -> bool:
    """A JSON boolean (``true`` or ``false``; not 0, 1 or a string)."""
    if not isinstance(value, bool):
        raise FieldError("must be true or false")
    return value


def integer(minimum: int | None = None, maximum: int | None = None) -> Validator:
    """An integer (JSON number without fraction), within the given bounds."""

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise FieldError("must be an integer")
        if minimum is not None and value < minimum:
            raise FieldError(f"must be >= {minimum}")
        if maximum is not None and value > maximum:
            raise FieldError(f"must be <= {maximum}")
        return int(value)

    return check


def number(minimum: float | None = None, maximum: float | None = None) -> Validator:
    """A finite JSON number, within the given bounds."""

    def check(value: Any) -> float | int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FieldError("must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise FieldError("must be finite")
        if minimum is not None and value < minimum:
            raise FieldError(f"must be >= {minimum:g}")
        if maximum is not None and value > maximum:
            raise FieldError(f"must be <= {maximum:g}")
        return value

    return check


def normalise_time(value: str) -> str:
    """RFC 3339 allows lower-case ``t`` and ``z``; Python's parser wants upper case."""
    return value.upper()


def parse_time(value: Any) -> datetime:
    """An RFC 3339 timestamp with an offset (``Z`` or ``+07:00``)."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise FieldError("must be an RFC 3339 time with an offset, e.g. 2026-11-22T09:00:00+07:00")
    try:
        parsed = datetime.fromisoformat(normalise_time(value))
    except ValueError as exc:
        raise FieldError(f"is not a valid time: {exc}") from None
    if parsed.tzinfo is None:  # pragma: no cover - the pattern requires an offset
        raise FieldError("must have an offset")
    return parsed


def timestamp(value: Any) -> str:
    """An RFC 3339 timestamp with an offset, kept as sent but for upper-cased ``T``/``Z``."""
    parse_time(value)
    return normalise_time(str(value))


def calendar_date(value: Any) -> str:
    """A calendar date ``YYYY-MM-DD``."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise FieldError("must be a date YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise FieldError("must be a date YYYY-MM-DD") from None
    return value


def period(value: Any) -> str:
    """A reporting period: ``2026``, ``2026-10``, ``2026-Q3`` or ``2026-H1``."""
    if not isinstance(value, str) or not _PERIOD.fullmatch(value):
        raise FieldError("must be a period such as 2026, 2026-10, 2026-Q3 or 2026-H1")
    return value


def url(value: Any) -> str:
    """An http(s) URL of at most 2,000 characters."""
    checked: str = text(2000)(value)
    if not checked.startswith(("https://", "http://")):
        raise FieldError("must be an http or https URL")
    return checked


latitude = number(-90.0, 90.0)
longitude = number(-180.0, 180.0)
