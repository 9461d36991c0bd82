"""The pure decisions of rollups: which tier answers a read, how a range splits into whole
buckets and raw edges, when an hour is ready, and how claimed pending hours are planned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from caretaker import resolution as res
from caretaker.errors import Invalid
from ingest.readback import Cursor
from rules.rollups import plan

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_tier_from_span() -> None:
    assert res.for_span(timedelta(hours=1)) is res.RAW
    assert res.for_span(timedelta(hours=6)) is res.RAW
    assert res.for_span(timedelta(hours=6, seconds=1)) is res.MINUTE
    assert res.for_span(timedelta(days=1)) is res.MINUTE
    assert res.for_span(timedelta(days=7)) is res.MINUTE
    assert res.for_span(timedelta(days=30)) is res.HOUR


def test_tier_from_bucket_is_the_coarsest_that_divides_it() -> None:
    assert res.for_bucket(timedelta(seconds=30)) is res.RAW
    assert res.for_bucket(timedelta(seconds=90)) is res.RAW
    assert res.for_bucket(timedelta(minutes=5)) is res.MINUTE
    assert res.for_bucket(timedelta(minutes=90)) is res.MINUTE
    assert res.for_bucket(timedelta(hours=1)) is res.HOUR
    assert res.for_bucket(timedelta(days=1)) is res.HOUR
    assert res.named("1m") is res.MINUTE
    with pytest.raises(Invalid):
        res.named("5m")


def test_a_chart_reads_the_coarsest_tier_not_wider_than_its_buckets() -> None:
    assert res.for_chart(timedelta(seconds=54)) == (res.RAW, timedelta(seconds=54))
    assert res.for_chart(timedelta(seconds=216)) == (res.MINUTE, timedelta(minutes=4))
    assert res.for_chart(timedelta(minutes=25, seconds=12)) == (res.MINUTE, timedelta(minutes=26))
    assert res.for_chart(timedelta(hours=1, minutes=48)) == (res.HOUR, timedelta(hours=2))


def test_an_hour_is_ready_once_it_has_ended_and_settled() -> None:
    assert res.ready_until(T0 + timedelta(hours=1, minutes=1)) == T0
    assert res.ready_until(T0 + timedelta(hours=1, seconds=59)) < T0


def test_plan_groups_by_hour_and_drops_hours_older_than_raw() -> None:
    h1, h2 = T0, T0 + timedelta(hours=1)
    old = T0 - timedelta(days=100)
    todo = plan([(7, h2), (3, h1), (5, h1), (3, old)], raw_since=T0 - timedelta(days=90))
    assert todo.hours == {h1: [3, 5], h2: [7]} and list(todo.hours) == [h1, h2]
    assert todo.expired == ((3, old),)
    assert plan([(3, old)], raw_since=None).hours == {old: [3]}


def test_cursor_round_trip_and_refusal() -> None:
    c = Cursor(T0, "pump-1", "pressure")
    assert Cursor.decode(c.encode()) == c
    for bad in ("", "nonsense", "W10", Cursor(T0, "p", "m").encode()[:-3] + "!!!"):
        with pytest.raises(Invalid):
            Cursor.decode(bad)
