"""Grafana's PostgreSQL macro expansion, as pkg/tsdb/grafana-postgresql-datasource does it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from caretaker.errors import Invalid
from dashboards.macros import (
    Variable,
    auto_interval,
    expand,
    format_interval,
    parse_interval,
    rfc3339,
)

START = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
END = datetime(2026, 11, 30, 6, 0, 0, 500000, tzinfo=UTC)


def x(sql: str, **kw: object) -> str:
    return expand(sql, start=START, end=END, interval=timedelta(minutes=5), **kw)  # type: ignore[arg-type]


def test_time_filter_from_to_as_grafana_writes_them() -> None:
    assert x("WHERE $__timeFilter(time)") == \
        "WHERE time BETWEEN '2026-11-30T00:00:00Z' AND '2026-11-30T06:00:00.5Z'"
    assert x("$__timeFrom() $__timeTo()") == "'2026-11-30T00:00:00Z' '2026-11-30T06:00:00.5Z'"
    assert x("$__time(t), $__timeEpoch(t)") == 't AS "time", extract(epoch from t) as "time"'


def test_time_group_uses_time_bucket_with_timescaledb() -> None:
    assert x("SELECT $__timeGroupAlias(time, $__interval)") == \
        "SELECT time_bucket('300.000s',time) AS \"time\""
    assert x("SELECT $__timeGroup(time, '1h') AS t") == "SELECT time_bucket('3600.000s',time) AS t"
    # followed by a comma: the pre-5.3 form, meant with its alias
    assert x("SELECT $__timeGroup(time, 1d), v") == \
        "SELECT time_bucket('86400.000s',time) AS \"time\", v"
    assert x("$__timeGroup(time, 5m) x", timescaledb=False) == \
        "floor(extract(epoch from time)/300)*300 x"


def test_interval_and_epoch_substitutions() -> None:
    assert x("$__interval_ms $__interval") == "300000 5m"
    assert x("$__unixEpochFrom() $__unixEpochTo()") == f"{int(START.timestamp())} " \
        f"{int(END.timestamp())}"
    assert x("$__unixEpochFilter(e)") == \
        f"e >= {int(START.timestamp())} AND e <= {int(END.timestamp())}"
    assert x("$__unixEpochNanoFrom()") == str(int(START.timestamp()) * 10**9)
    assert x("$__unixEpochNanoTo()") == str(int(END.timestamp()) * 10**9 + 500000000)
    assert x("$__unixEpochGroupAlias(e, 1h)") == 'floor((e)/3600)*3600 AS "time"'


def test_variables_as_the_sql_datasource_formats_them() -> None:
    v = {"site": Variable("river'side"), "sites": Variable(["a", "b'c"], multi=True),
         "one": Variable("x", multi=True)}
    assert x("'$site' ${site} [[site]]", variables=v) == "'river''side' river''side river''side"
    assert x("IN ($sites) $one", variables=v) == "IN ('a','b''c') 'x'"
    assert x("$unknown $site_id", variables=v) == "$unknown $site_id"


def test_bad_macros_are_refused() -> None:
    with pytest.raises(Invalid, match="unknown macro"):
        x("$__nope(x)")
    with pytest.raises(Invalid, match="needs"):
        x("$__timeFilter()")
    with pytest.raises(Invalid, match="parsing interval"):
        x("$__timeGroup(time, soon)")


def test_intervals() -> None:
    assert parse_interval("1h30m") == timedelta(minutes=90)
    assert parse_interval("'2w'") == timedelta(weeks=2)
    assert parse_interval("250ms") == timedelta(milliseconds=250)
    assert [format_interval(timedelta(seconds=s)) for s in (0.1, 30, 90, 7200, 86400 * 3)] == \
        ["100ms", "30s", "1m", "2h", "3d"]
    assert auto_interval(START, START + timedelta(hours=1)) == timedelta(minutes=1)
    assert auto_interval(START, START + timedelta(days=30)) == timedelta(hours=1)
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)) == \
        "2026-01-02T03:04:05.12Z"
