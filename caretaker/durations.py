"""The one duration grammar: a number of seconds, or `2w`, `7d`, `1h30m`, `20m`, `90s`, `1.5h`.

Used by the site YAML, the API, the simulator and the CLI alike; `Duration` is the pydantic
type that validates the same grammar and writes a duration back in its shortest form.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from caretaker.errors import Invalid

MAX_SECONDS = 100 * 365 * 86400  # a duration longer than this is a mistake
UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?[wdhms])+$")


def _parse(value: Any) -> timedelta:
    """A duration in any accepted form → timedelta; ValueError saying what is wrong."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or value is None:
        raise ValueError(f"{value!r} is not a duration like 30s, 5m or 1h30m")
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value)[:64].strip().replace(" ", "").lower()
        try:
            seconds = float(text)
        except ValueError:
            if not _WHOLE.match(text):
                raise ValueError(f"{value!r} is not a duration like 30s, 5m or 1h30m") from None
            units = [u for _, u in _PART.findall(text)]
            if len(set(units)) != len(units) or units != sorted(units, key=lambda u: -UNITS[u]):
                raise ValueError(f"{value!r} gives its units out of order") from None
            seconds = sum(float(n) * UNITS[u] for n, u in _PART.findall(text))
    if seconds != seconds or seconds < 0 or seconds > MAX_SECONDS:
        raise ValueError(f"{value!r} is not between 0 and 100 years")
    return timedelta(seconds=seconds)


def parse_duration(value: Any, *, what: str = "duration") -> timedelta:
    """A duration in any accepted form (number of seconds, '1h30m', timedelta) → timedelta."""
    try:
        return _parse(value)
    except ValueError as exc:
        raise Invalid(f"{what}: {exc}") from None


def seconds(value: Any, *, what: str = "duration") -> float:
    """A duration in any accepted form → seconds."""
    return parse_duration(value, what=what).total_seconds()


def format_duration(delta: timedelta | float) -> str:
    """A duration in its shortest form: '2h', '20m', '1h30m', '45s' ('0s' for none)."""
    total = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    whole = int(total)
    if whole != total:
        return f"{total:g}s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = UNITS[unit]
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts) or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(_parse),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({
        "anyOf": [{"type": "string", "pattern": r"^\s*((\d+(\.\d+)?[wdhms])+|\d+(\.\d+)?)\s*$",
                   "maxLength": 64},
                  {"type": "number", "minimum": 0, "maximum": MAX_SECONDS}],
        "examples": ["30s", "5m", "1h30m"],
        "description": "a duration: seconds, or 2w, 7d, 1h30m, 20m, 90s (at most 100 years)"}),
]
"""A duration field: accepts the grammar above; in JSON, written in its shortest form."""
