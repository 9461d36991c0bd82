"""The KPI library's SQL functions (migration 015) give the numbers reports.kpis.compute gives,
for the same site, local dates and `now`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from reports import kpis
from tests.dashboards.backfill import SITE, example_site, records


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a == pytest.approx(b, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("now", [datetime(2026, 11, 25, 6, 30, tzinfo=UTC),  # mid-period
                                 datetime(2026, 12, 20, tzinfo=UTC)])          # after it
def test_sql_kpis_equal_compute(conn: psycopg.Connection[Any], now: datetime) -> None:
    doc = example_site(conn, datetime(2026, 11, 1, tzinfo=UTC))
    records(conn, doc, datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC),
            tickets=120)
    conn.execute("INSERT INTO kpi_targets (site_id, targets, updated_at) VALUES"
                 " (%s, '{\"satisfaction\": 0.9, \"backlog\": 5, \"repair_timeliness\": null}',"
                 " now())", (SITE,))
    for start, end in ((date(2026, 11, 16), date(2026, 11, 23)),
                       (date(2026, 11, 10), date(2026, 12, 1)),
                       (date(2026, 11, 24), date(2026, 11, 25)),
                       (date(2027, 1, 1), date(2027, 1, 8))):     # nothing to count
        expected = kpis.compute(conn, SITE, start, end, now=now)
        rows = conn.execute("SELECT * FROM kpi_period(%s, %s, %s, %s)",
                            (SITE, start, end, now)).fetchall()
        assert [r["name"] for r in rows] == list(kpis.NAMES)
        for r in rows:
            k = expected[r["name"]]
            for field in ("value", "numerator", "denominator", "target"):
                assert _same(r[field], getattr(k, field)), (start, r["name"], field, r, k)


def test_weeks_follow_the_site_clock(conn: psycopg.Connection[Any]) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    doc = example_site(conn, datetime(2026, 11, 1, tzinfo=UTC))
    records(conn, doc, datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))
    rows = conn.execute("SELECT * FROM kpi_weeks(%s, %s, %s, %s)",
                        (SITE, datetime(2026, 11, 12, tzinfo=UTC),
                         datetime(2026, 11, 24, tzinfo=UTC), now)).fetchall()
    mondays = sorted({r["time"] for r in rows})
    # Mondays 00:00 Asia/Shanghai = Sunday 16:00 UTC
    assert mondays == [datetime(2026, 11, 8, 16, tzinfo=UTC) + timedelta(weeks=k)
                       for k in range(3)]
    week = {r["name"]: r for r in rows if r["time"] == mondays[1]}
    expected = kpis.compute(conn, SITE, date(2026, 11, 16), date(2026, 11, 23), now=now)
    for name, k in expected.items():
        assert _same(week[name]["value"], k.value), name
