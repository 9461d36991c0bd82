"""Grafana's PostgreSQL query expansion, done the way Grafana does it, so the tests can run a
panel's SQL without Grafana: dashboard variables (the frontend's interpolateVariable), then the
global SQL substitutions (sqleng.Interpolate: $__interval_ms, $__interval, $__unixEpochFrom(),
$__unixEpochTo()), then the datasource's macros (pkg/tsdb/grafana-postgresql-datasource
macros.go: $__time, $__timeEpoch, $__timeFilter, $__timeFrom, $__timeTo, $__timeGroup[Alias]
with time_bucket when timescaledb is on, $__unixEpochFilter/NanoFilter/NanoFrom/NanoTo,
$__unixEpochGroup[Alias]). Pure functions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from caretaker.errors import Invalid

_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
# $name, ${name} and [[name]], as Grafana's template service reads them
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)\]\]|\$\{(\w+)\}")
_CALENDAR = re.compile(r"^(\d+)(y|w|d)$")
_GO_UNIT = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
               "h": 3600.0}
# Grafana rounds the auto interval to one of these (a subset of its roundInterval steps)
NICE = tuple(timedelta(seconds=s) for s in (
    1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400,
    7 * 86400, 30 * 86400, 365 * 86400))


@dataclass(frozen=True)
class Variable:
    """A dashboard variable's current value; multi or include-all ones are quoted lists."""

    value: str | list[str]
    multi: bool = False


def quote_literal(value: str) -> str:
    """The SQL datasource's quoteLiteral: '...' with quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def format_variable(var: Variable) -> str:
    """What Grafana's SQL datasource writes for a variable's value (interpolateVariable)."""
    if isinstance(var.value, list):
        return ",".join(quote_literal(v) for v in var.value)
    if var.multi:
        return quote_literal(var.value)
    return var.value.replace("'", "''")


def rfc3339(at: datetime) -> str:
    """Go's time.RFC3339Nano of an instant in UTC (fraction without trailing zeros)."""
    at = at.astimezone(UTC)
    text = at.strftime("%Y-%m-%dT%H:%M:%S")
    if at.microsecond:
        text += "." + f"{at.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_interval(text: str) -> timedelta:
    """gtime.ParseInterval: 1d, 2w, 1y, or a Go duration like 5m, 1h30m, 250ms."""
    text = text.strip().strip("'")
    m = _CALENDAR.match(text)
    if m:
        days = {"d": 1, "w": 7, "y": 365}[m.group(2)]
        return timedelta(days=int(m.group(1)) * days)
    parts = _GO_UNIT.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise Invalid(f"error parsing interval {text}")
    return timedelta(seconds=sum(float(n) * _GO_SECONDS[u] for n, u in parts))


def format_interval(interval: timedelta) -> str:
    """gtime.FormatInterval: the largest whole unit (1y, 2d, 3h, 5m, 30s, 100ms)."""
    ms = int(interval.total_seconds() * 1000)
    for unit, size in (("y", 365 * 86400000), ("d", 86400000), ("h", 3600000),
                       ("m", 60000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return "1ms"


def auto_interval(start: datetime, end: datetime, *, max_points: int = 1000,
                  minimum: timedelta = timedelta(minutes=1)) -> timedelta:
    """$__interval as Grafana picks it: range ÷ data points, rounded up to a nice step, never
    below the datasource's minimum (jsonData.timeInterval)."""
    raw = (end - start) / max_points
    nice = next((n for n in NICE if n >= raw), NICE[-1])
    return max(nice, minimum)


def _seconds(interval: timedelta) -> str:
    """Go's %v of a float64 number of seconds (3600, 0.5)."""
    return f"{interval.total_seconds():g}"


def _macro(name: str, args: list[str], start: datetime, end: datetime,
           timescaledb: bool) -> str:
    def need(n: int, what: str) -> None:
        if len(args) < n or not args[0]:
            raise Invalid(f"macro ${name} needs {what}")

    if name == "__time":
        need(1, "a time column")
        return f'{args[0]} AS "time"'
    if name == "__timeEpoch":
        need(1, "a time column")
        return f'extract(epoch from {args[0]}) as "time"'
    if name == "__timeFilter":
        need(1, "a time column")
        return f"{args[0]} BETWEEN '{rfc3339(start)}' AND '{rfc3339(end)}'"
    if name == "__timeFrom":
        return f"'{rfc3339(start)}'"
    if name == "__timeTo":
        return f"'{rfc3339(end)}'"
    if name in ("__timeGroup", "__timeGroupAlias"):
        need(2, "a time column and an interval")
        interval = parse_interval(args[1])
        group = (f"time_bucket('{interval.total_seconds():.3f}s',{args[0]})" if timescaledb
                 else f"floor(extract(epoch from {args[0]})/{_seconds(interval)})"
                      f"*{_seconds(interval)}")
        return group + (' AS "time"' if name == "__timeGroupAlias" else "")
    if name == "__unixEpochFilter":
        need(1, "a time column")
        return (f"{args[0]} >= {int(start.timestamp())} AND "
                f"{args[0]} <= {int(end.timestamp())}")
    if name == "__unixEpochNanoFilter":
        need(1, "a time column")
        return f"{args[0]} >= {_nanos(start)} AND {args[0]} <= {_nanos(end)}"
    if name == "__unixEpochNanoFrom":
        return str(_nanos(start))
    if name == "__unixEpochNanoTo":
        return str(_nanos(end))
    if name in ("__unixEpochGroup", "__unixEpochGroupAlias"):
        need(2, "a time column and an interval")
        interval = parse_interval(args[1])
        group = f"floor(({args[0]})/{_seconds(interval)})*{_seconds(interval)}"
        return group + (' AS "time"' if name == "__unixEpochGroupAlias" else "")
    raise Invalid(f"unknown macro {name!r}")


def _nanos(at: datetime) -> int:
    delta = at.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def interpolate_variables(sql: str, variables: Mapping[str, Variable]) -> str:
    """Dashboard variables replaced as the frontend does; unknown names are left as written."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        var = variables.get(name)
        return m.group(0) if var is None else format_variable(var)

    return _VARIABLE.sub(sub, sql)


def expand(sql: str, *, start: datetime, end: datetime, interval: timedelta | None = None,
           variables: Mapping[str, Variable] | None = None, timescaledb: bool = True) -> str:
    """The SQL Grafana would send to PostgreSQL for this query, time range and variables."""
    interval = interval or auto_interval(start, end)
    sql = interpolate_variables(sql, variables or {})
    sql = sql.replace("$__interval_ms", str(int(interval.total_seconds() * 1000)))
    sql = sql.replace("$__interval", format_interval(interval))
    sql = sql.replace("$__unixEpochFrom()", str(int(start.timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(int(end.timestamp())))

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        # pre-5.3 dashboards: `$__timeGroup(...),` is meant with its alias
        if name == "__timeGroup":
            at = sql.find(m.group(0))
            if at >= 0 and sql[at + len(m.group(0)):at + len(m.group(0)) + 1] == ",":
                name = "__timeGroupAlias"
        args = [a.strip() for a in m.group(2).split(",")]
        return _macro(name, args, start, end, timescaledb)

    return _MACRO.sub(sub, sql)
