"""The one source of time. Tests replace it with a controllable clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The current time, UTC, timezone-aware."""
    return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told to: `clock.advance(seconds=5)`."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move forward by a timedelta given as keywords; return the new time."""
        self.now += timedelta(**delta)
        return self.now

    def set(self, when: datetime) -> None:
        """Jump to a given time."""
        self.now = when
