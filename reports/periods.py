"""Periods on a site's clock: ISO weeks (Monday..Sunday) and their instants, pure functions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from caretaker.errors import Invalid

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True, order=True)
class Week:
    """An ISO week: Monday..Sunday."""

    year: int
    week: int

    @classmethod
    def parse(cls, text: str) -> Week:
        """"2026-W48" → Week(2026, 48); Invalid for anything else or a week that does not exist."""
        m = _WEEK.match(text.strip())
        if not m:
            raise Invalid(f"{text!r} is not an ISO week like 2026-W48")
        try:
            date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
        except ValueError:
            raise Invalid(f"{text!r}: year {m.group(1)} has no week {m.group(2)}") from None
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def of(cls, day: date) -> Week:
        """The week a date falls in."""
        iso = day.isocalendar()
        return cls(iso.year, iso.week)

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.week, 1)

    @property
    def sunday(self) -> date:
        return self.monday + timedelta(days=6)

    @property
    def next_monday(self) -> date:
        return self.monday + timedelta(days=7)

    def shift(self, weeks: int) -> Week:
        """The week `weeks` later (earlier when negative)."""
        return Week.of(self.monday + timedelta(weeks=weeks))

    def bounds(self, tz: str) -> tuple[datetime, datetime]:
        """[Monday 00:00, next Monday 00:00) on the site's clock, as UTC instants."""
        return (local_midnight(self.monday, tz).astimezone(UTC),
                local_midnight(self.next_monday, tz).astimezone(UTC))


def local_midnight(day: date, tz: str) -> datetime:
    """00:00 of a date on a site's clock."""
    return datetime.combine(day, time(0), ZoneInfo(tz))


def at_local(day: date, clock: time, tz: str) -> datetime:
    """A wall-clock time of a date on a site's clock (a time skipped by DST moves forward)."""
    naive = datetime.combine(day, clock)
    aware = naive.replace(tzinfo=ZoneInfo(tz))
    # normalise through UTC: a non-existent local time (spring forward) becomes a real instant
    return aware.astimezone(ZoneInfo("UTC")).astimezone(ZoneInfo(tz))


def last_complete_week(now: datetime, tz: str) -> Week:
    """The last week that has ended on the site's clock at `now`."""
    today = now.astimezone(ZoneInfo(tz)).date()
    return Week.of(today).shift(-1)


def due_week(now: datetime, tz: str, *, weekday: int, at: time) -> Week:
    """The latest week whose report is due at `now`: its report is made on `weekday` at `at`
    of the following week (site time). Reports of weeks before it are not caught up."""
    week = last_complete_week(now, tz)
    when = at_local(week.next_monday + timedelta(days=weekday), at, tz)
    return week if now >= when else week.shift(-1)


def shift_changes(now: datetime, tz: str, changes: list[time]) -> tuple[datetime, datetime]:
    """The last shift change at or before `now` and the one before it (site time)."""
    local_day = now.astimezone(ZoneInfo(tz)).date()
    instants = sorted(at_local(local_day + timedelta(days=d), t, tz)
                      for d in (-2, -1, 0) for t in changes)
    passed = [i for i in instants if i <= now]
    return passed[-1], passed[-2]
