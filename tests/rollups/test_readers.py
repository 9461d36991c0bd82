"""The console's device chart reads the tier its range calls for, and draws the same averages
before the hours are rolled up (read raw) and after (read from the rollups)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import psycopg

from api.console.data import MAX_POINTS, series
from rules.rollups import catch_up
from tests.rollups.helpers import Point, ingest, steady, utc

NOW = utc(2026, 11, 23, 8, 0)
H = timedelta(hours=1)


def test_the_device_chart_is_the_same_from_rollups(conn: psycopg.Connection[Any]) -> None:
    points = steady(["p1"], ["temp", "flow"], NOW - 8 * 24 * H, NOW, timedelta(minutes=3))
    points.append(Point("p1", "mode", NOW - H, "auto"))  # text: not a line
    ingest(conn, points, received=NOW)
    ranges = (6 * H, 24 * H, 7 * 24 * H)
    before = {span: series(conn, "s1", "p1", start=NOW - span, end=NOW) for span in ranges}
    assert catch_up(conn, now=NOW) > 0
    for span in ranges:
        after = series(conn, "s1", "p1", start=NOW - span, end=NOW)
        assert set(after) == {"temp", "flow"}
        for metric, line in after.items():
            assert 0 < len(line) <= MAX_POINTS + 1
            assert [t for t, _ in line] == [t for t, _ in before[span][metric]]
            assert all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for (_, a), (_, b)
                       in zip(line, before[span][metric], strict=True))
    # a week's line has ~388 buckets of 26 minutes, each the mean of its raw points
    week = series(conn, "s1", "p1", start=NOW - 7 * 24 * H, end=NOW)["temp"]
    first = [p.value for p in points if p.metric == "temp" and NOW - 7 * 24 * H <= p.time
             and p.time.timestamp() < week[0][0] + 26 * 60]
    assert isinstance(first[0], float)
    assert math.isclose(week[0][1], sum(first) / len(first))  # type: ignore[arg-type]
