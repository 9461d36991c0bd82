"""End to end: the simulator's fire-pump-missed scenario → the real broker → `caretaker ingest`
(a subprocess) → the fire-pump job → a gap in the log, with its work order and notification."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
import yaml
from psycopg.rows import dict_row

from caretaker.site_config import example_document
from rules import fire_pump_store as store
from simulators.run import Options, build_plan, simulate
from simulators.stream import Publish, events
from stack.app import load_site
from tests.fix_servers import Broker
from tests.simulators.test_ingest_e2e import ingest  # noqa: F401  (the fixture)

pytestmark = pytest.mark.e2e
ZONE = ZoneInfo("Asia/Shanghai")
PUMPS = ("fire-pump-1", "fire-pump-2", "jockey-pump-1")
KEEP = ("site", "zones", "device_types", "fire_pumps", "work_order_policy", "notifications")


def fire_pump_room(tmp_path: Path) -> Path:
    """The example site cut down to its fire-pump room (three pumps, no patrols)."""
    doc = {k: v for k, v in example_document().items() if k in KEEP}
    doc["devices"] = [d for d in example_document()["devices"] if d["id"] in PUMPS]
    path = tmp_path / "fire-pump-room.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


def test_a_skipped_weekly_test_shows_as_a_gap_through_the_whole_stack(
        ingest: str, mqtt: Broker, tmp_path: Path) -> None:  # noqa: F811
    config = fire_pump_room(tmp_path)
    now = datetime(2026, 11, 24, 6, tzinfo=ZONE)  # Tuesday morning: the week of 11-16 is whole
    with psycopg.connect(ingest, row_factory=dict_row) as conn:
        load_site(conn, yaml.safe_load(config.read_text()), now=now - timedelta(days=30))
    options: dict[str, Any] = dict(config=config, backfill=9 * 86400, interval=120,
                                   scenario="fire-pump-missed", guards=False, seed=5)
    plan, _ = build_plan(Options(**options), now=now)
    expected = sum(1 for e in events(plan) if isinstance(e, Publish) and e.kind == "telemetry")
    simulate(Options(progress=False, **options), target=mqtt.take("simulator"), now=now)

    with psycopg.connect(ingest, row_factory=dict_row) as conn:
        deadline = time.monotonic() + 120
        stored = 0
        while stored < expected and time.monotonic() < deadline:
            stored = conn.execute("SELECT count(DISTINCT (device_id, time)) AS n FROM telemetry"
                                  " WHERE site_id = 'riverside'").fetchone()["n"]
            time.sleep(0.5)
        assert stored == expected
        for at in (now, now + store.SETTLE):  # judged once its data has held still
            store.fire_pump_job(conn, at)
            conn.commit()
        got = {(r["device_id"], r["test"]): r for r in conn.execute(
            "SELECT * FROM fire_pump_tests WHERE test = 'weekly_auto'")}
        week = datetime(2026, 11, 16, tzinfo=ZONE)
        assert set(got) == {("fire-pump-1", "weekly_auto"), ("fire-pump-2", "weekly_auto")}
        assert all(r["period_start"] == week for r in got.values())
        missed, done = got[("fire-pump-1", "weekly_auto")], got[("fire-pump-2", "weekly_auto")]
        assert missed["status"] == "missed" and missed["work_order_id"] is not None
        assert done["status"] == "done"
        run = conn.execute("SELECT * FROM fire_pump_runs WHERE id = %s",
                           (done["run_id"],)).fetchone()
        assert run["mode"] == "auto"
        started = run["started_at"].astimezone(ZONE)  # 10:15, seen at the next reading
        assert started.weekday() == 0 and started.hour == 10 and 15 <= started.minute <= 17
        wo = conn.execute("SELECT * FROM work_orders WHERE id = %s",
                          (missed["work_order_id"],)).fetchone()
        assert wo["source"] == "preventive" and wo["device_id"] == "fire-pump-1"
        assert conn.execute("SELECT count(*) AS n FROM notification_outbox WHERE subject ="
                            " 'work_order' AND event = 'opened'").fetchone()["n"] >= 1
        jockey = conn.execute("SELECT status, details FROM fire_pump_tests"
                              " WHERE test = 'jockey_daily'").fetchall()
        assert len(jockey) == 8 and {j["status"] for j in jockey} == {"done"}
