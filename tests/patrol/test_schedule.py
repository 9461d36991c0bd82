"""Schedule expansion: wall-clock times in the site's zone, DST days, midnight, months."""

from datetime import UTC, date, datetime, timedelta

import pytest

from rules.patrol.model import PatrolConfigError, Schedule, schedule_from_dict
from rules.patrol.schedule import next_occurrence, occurrences


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
        ) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def sched(**kw: object) -> Schedule:
    base = {"id": "s", "route": "r", "guard": "g", "effective_from": "2026-01-01"}
    return schedule_from_dict({**base, **kw})


def test_daily_fixed_times_in_site_zone() -> None:
    s = sched(kind="daily", at=["22:00", "08:30"])
    got = occurrences(s, "Asia/Shanghai", utc(2026, 11, 23), utc(2026, 11, 25))
    assert got == [utc(2026, 11, 23, 0, 30), utc(2026, 11, 23, 14), utc(2026, 11, 24, 0, 30),
                   utc(2026, 11, 24, 14)]


def test_yaml_sexagesimal_times_are_read_as_clock_times() -> None:
    # unquoted 22:00 in YAML 1.1 arrives as the integer 1320
    s = sched(kind="daily", at=[1320])
    assert occurrences(s, "UTC", utc(2026, 5, 1), utc(2026, 5, 2)) == [utc(2026, 5, 1, 22)]


def test_every_two_hours_across_midnight_end_excluded() -> None:
    s = sched(kind="every", every="2h", window={"start": "20:00", "end": "06:00"})
    got = occurrences(s, "Asia/Shanghai", utc(2026, 11, 23, 10), utc(2026, 11, 24, 10))
    # 20, 22, 00, 02, 04 local (UTC+8); 06:00 is the window's end and not a start
    assert got == [utc(2026, 11, 23, 12), utc(2026, 11, 23, 14), utc(2026, 11, 23, 16),
                   utc(2026, 11, 23, 18), utc(2026, 11, 23, 20)]


def test_window_across_midnight_belongs_to_its_start_day() -> None:
    # 2026-11-23 is a Monday: Monday night's rounds run into Tuesday morning; Tuesday night none
    s = sched(kind="every", every="2h", window={"start": "20:00", "end": "06:00"},
              weekdays=["mon"])
    got = occurrences(s, "UTC", utc(2026, 11, 23), utc(2026, 11, 26))
    assert got == [utc(2026, 11, 23, 20), utc(2026, 11, 23, 22), utc(2026, 11, 24, 0),
                   utc(2026, 11, 24, 2), utc(2026, 11, 24, 4)]
    # a range starting after midnight still finds the tail of Monday's window
    assert occurrences(s, "UTC", utc(2026, 11, 24, 1), utc(2026, 11, 24, 12)) == [
        utc(2026, 11, 24, 2), utc(2026, 11, 24, 4)]


def test_spring_forward_new_york() -> None:
    # 2026-03-08: clocks jump 02:00 EST -> 03:00 EDT
    hourly = sched(kind="every", every="1h", window={"start": "00:00", "end": "06:00"})
    got = occurrences(hourly, "America/New_York", utc(2026, 3, 8), utc(2026, 3, 9))
    # 00 EST, 01 EST, 02 (does not exist -> 03 EDT), 03 EDT (same instant), 04 EDT, 05 EDT
    assert got == [utc(2026, 3, 8, 5), utc(2026, 3, 8, 6), utc(2026, 3, 8, 7),
                   utc(2026, 3, 8, 8), utc(2026, 3, 8, 9)]
    daily = sched(kind="daily", at=["02:30", "22:00"])
    assert occurrences(daily, "America/New_York", utc(2026, 3, 7, 12), utc(2026, 3, 9, 6)) == [
        utc(2026, 3, 8, 3),       # 22:00 EST on the 7th
        utc(2026, 3, 8, 7, 30),   # 02:30 moved forward to 03:30 EDT
        utc(2026, 3, 9, 2),       # 22:00 EDT on the 8th
    ]


def test_fall_back_new_york() -> None:
    # 2026-11-01: clocks fall back 02:00 EDT -> 01:00 EST; 01:30 happens twice
    hourly = sched(kind="every", every="1h", window={"start": "00:00", "end": "04:00"})
    got = occurrences(hourly, "America/New_York", utc(2026, 11, 1), utc(2026, 11, 2))
    assert got == [utc(2026, 11, 1, 4), utc(2026, 11, 1, 5), utc(2026, 11, 1, 7),
                   utc(2026, 11, 1, 8)]
    daily = sched(kind="daily", at=["01:30"])
    assert occurrences(daily, "America/New_York", utc(2026, 10, 31), utc(2026, 11, 3)) == [
        utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_monthly_last_friday() -> None:
    s = sched(kind="monthly", monthly={"nth": -1, "weekday": "fri"}, at=["09:00"])
    got = occurrences(s, "Asia/Shanghai", utc(2026, 11, 1), utc(2027, 3, 1))
    assert [d.astimezone(UTC).date() for d in got] == [
        date(2026, 11, 27), date(2026, 12, 25), date(2027, 1, 29), date(2027, 2, 26)]
    assert got[0] == utc(2026, 11, 27, 1)


def test_monthly_day_and_nth_weekday() -> None:
    last_day = sched(kind="monthly", monthly={"day": -1}, at=["10:00"])
    assert [d.date() for d in occurrences(last_day, "UTC", utc(2027, 1, 1), utc(2027, 4, 1))] \
        == [date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31)]
    day31 = sched(kind="monthly", monthly={"day": 31}, at=["10:00"])
    assert [d.date() for d in occurrences(day31, "UTC", utc(2027, 2, 1), utc(2027, 5, 1))] \
        == [date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30)]
    first_mon = sched(kind="monthly", monthly={"nth": 1, "weekday": "mon"}, at=["10:00"])
    assert [d.date() for d in occurrences(first_mon, "UTC", utc(2026, 11, 1),
                                          utc(2027, 1, 1))] == [date(2026, 11, 2),
                                                                date(2026, 12, 7)]


def test_weekly_and_effective_dates() -> None:
    s = sched(kind="weekly", weekdays=["wed"], at=["09:00"], effective_from="2026-11-10",
              effective_until="2026-11-30")
    got = occurrences(s, "UTC", utc(2026, 11, 1), utc(2026, 12, 31))
    assert [d.date() for d in got] == [date(2026, 11, 11), date(2026, 11, 18),
                                       date(2026, 11, 25)]
    assert next_occurrence(s, "UTC", utc(2026, 11, 18, 9, 0, 0) + timedelta(seconds=1)) == \
        utc(2026, 11, 25, 9)


@pytest.mark.parametrize("bad", [
    {"kind": "daily"},                                    # no at
    {"kind": "weekly", "at": ["09:00"]},                  # no weekdays
    {"kind": "every", "every": "0m"},
    {"kind": "monthly", "at": ["09:00"], "monthly": {"nth": 7, "weekday": "fri"}},
    {"kind": "daily", "at": ["25:00"]},
    {"kind": "hourly", "at": ["09:00"]},
])
def test_invalid_schedules_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(PatrolConfigError):
        sched(**bad)
