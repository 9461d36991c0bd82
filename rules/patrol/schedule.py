"""Expand schedules into run start times: reason in the site's local time, answer in UTC.

Times are wall-clock times in the site's zone. On a daylight-saving change a time that
does not exist (02:30 when clocks jump 02:00→03:00) moves forward by the jump, and a time
that occurs twice (01:30 when clocks fall back) is taken once, at its first occurrence;
two nominal times that land on the same instant give one run. "every N" steps in wall-clock
time inside its window (20:00, 22:00, 00:00, ... for every 2h from 20:00), the window's end
excluded; a window whose end is not after its start crosses midnight and belongs to the
local date it starts on (weekday filters apply to that date).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from rules.patrol.model import Schedule


def local_to_utc(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time (gaps move forward, folds take the first)."""
    naive = datetime.combine(day, at)
    aware = naive.replace(tzinfo=tz, fold=0)
    utc = aware.astimezone(UTC)
    # fold=0 on a non-existent time uses the offset from before the jump, which lands after
    # the jump (02:30 EST → 03:30 EDT) — the "move forward" rule.
    return utc


def _monthly_day(sched: Schedule, day: date) -> bool:
    m = sched.monthly
    if m is None:
        return False
    last = calendar.monthrange(day.year, day.month)[1]
    if m.day is not None:
        want = last if m.day == -1 else min(m.day, last)
        return day.day == want
    if day.weekday() != m.weekday or m.nth is None:
        return False
    if m.nth > 0:
        return (day.day - 1) // 7 + 1 == m.nth
    return (last - day.day) // 7 + 1 == -m.nth


def effective_instant(sched: Schedule, tz: ZoneInfo) -> datetime | None:
    """The instant the schedule's own `effective_from` names (a date: its local midnight)."""
    first = sched.effective_from
    if first is None:
        return None
    if isinstance(first, datetime):
        return first.astimezone(UTC)
    return local_to_utc(first, time(0), tz)


def _day_applies(sched: Schedule, day: date) -> bool:
    first = sched.effective_from
    # a date: runs from that local date on (not the tail of the night before's window)
    if first is not None and not isinstance(first, datetime) and day < first:
        return False
    if sched.effective_until is not None and day > sched.effective_until:
        return False
    if sched.kind == "monthly":
        return _monthly_day(sched, day)
    return not sched.weekdays or day.weekday() in sched.weekdays


def _nominal(sched: Schedule, day: date) -> Iterator[datetime]:
    """Naive local start times of the runs that belong to local date `day`."""
    if sched.kind != "every":
        for at in sched.at:
            yield datetime.combine(day, at)
        return
    step = sched.every or timedelta(days=1)
    start_t, end_t = (sched.window.start, sched.window.end) if sched.window else (time(0), time(0))
    start = datetime.combine(day, start_t)
    end = datetime.combine(day, end_t)
    if end <= start:  # crosses midnight (or the whole day when start == end)
        end += timedelta(days=1)
    t = start
    while t < end:
        yield t
        t += step


def occurrences(sched: Schedule, tz: ZoneInfo | str, start: datetime, end: datetime, *,
                not_before: datetime | None = None) -> list[datetime]:
    """Planned run starts (UTC, sorted, unique) in [start, end) for an enabled schedule.

    None starts before the schedule takes effect: its `effective_from`, and `not_before`
    (the instant it was first loaded, when the file names none).
    """
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    for bound in (effective_instant(sched, zone), not_before):
        if bound is not None:
            start = max(start, bound)
    if not sched.enabled or end <= start:
        return []
    # A window crossing midnight belongs to the previous local date: look one day back.
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    if sched.effective_until is not None:
        last = min(last, sched.effective_until)
    found: set[datetime] = set()
    day = first
    while day <= last:
        if _day_applies(sched, day):
            for naive in _nominal(sched, day):
                utc = local_to_utc(naive.date(), naive.time(), zone)
                if start <= utc < end:
                    found.add(utc)
        day += timedelta(days=1)
    return sorted(found)


def next_occurrence(sched: Schedule, tz: ZoneInfo | str, after: datetime,
                    *, horizon: timedelta = timedelta(days=62),
                    not_before: datetime | None = None) -> datetime | None:
    """The first planned start at or after `after`, looking at most `horizon` ahead."""
    found = occurrences(sched, tz, after, after + horizon, not_before=not_before)
    return found[0] if found else None
