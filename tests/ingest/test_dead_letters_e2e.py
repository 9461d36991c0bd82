"""Through the real broker: a bad message received again is counted, never a second row."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.ingest.helpers import (
    forget_session,
    ingest_settings,
    publish,
    running_worker,
    wait_until,
)

pytestmark = pytest.mark.e2e


def _dead(database: str) -> list[dict[str, Any]]:
    with psycopg.connect(database, row_factory=dict_row) as c:
        return c.execute("SELECT topic, item, count, reason FROM dead_letters ORDER BY topic"
                         ).fetchall()


def test_a_bad_message_sent_again_is_one_dead_letter_counted_twice(
        database: str, mqtt: tuple[str, int]) -> None:
    site = f"s{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database) as c:
        c.execute("INSERT INTO sites (id, name) VALUES (%s, 'S')", (site,))
    bad = (f"caretaker/v1/{site}/devices/d1/telemetry", b"{broken")
    mixed = (f"caretaker/v1/{site}/devices/d2/telemetry",
             b'[{"ts": 1763900000000, "values": {"v": 1}}, {"ts": "noon", "values": {"v": 2}}]')
    stranger = (f"caretaker/v1/n{uuid.uuid4().hex[:8]}/devices/d1/telemetry", b'{"v": 1}')
    settings = ingest_settings(database, mqtt)
    try:
        with running_worker(settings):
            publish(mqtt, [bad, mixed, stranger])
            assert wait_until(lambda: len(_dead(database)) == 3)
            publish(mqtt, [bad, mixed, stranger])  # as a redelivery would bring them
            assert wait_until(lambda: sum(d["count"] for d in _dead(database)) == 6)
    finally:
        forget_session(settings)
    dead = {(d["topic"], d["item"]): (d["count"], d["reason"]) for d in _dead(database)}
    assert dead == {(bad[0], None): (2, dead[(bad[0], None)][1]),
                    (mixed[0], 1): (2, "item 1: timestamp is not a number: 'noon'"),
                    (stranger[0], None): (2, f"unknown site {stranger[0].split('/')[2]!r}")}
    with psycopg.connect(database) as c:
        assert c.execute("SELECT count(*) FROM telemetry").fetchone() == (1,)
        assert c.execute("SELECT count(*) FROM sites").fetchone() == (1,)
