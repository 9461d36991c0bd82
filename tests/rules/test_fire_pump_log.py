"""The fire-pump test log against the real database: simulated pump telemetry in, the log, gaps
(a verdict, a work order, a queued notification), the API and the weekly report out."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from caretaker.clock import FakeClock
from caretaker.site_config import example_document
from ingest.payloads import TelemetryRow
from ingest.store import store_telemetry
from reports import weekly
from reports.periods import Week
from rules import fire_pump_store as store
from rules.fire_pumps import FirePumpSpec
from simulators.devices import MODELS, reading
from simulators.fleet import Device, fleet_from_config
from stack.app import load_site

SITE = "riverside"
ZONE = ZoneInfo("Asia/Shanghai")
PUMPS = ("fire-pump-1", "fire-pump-2", "jockey-pump-1")
MakeToken = Callable[..., dict[str, str]]


def local(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=ZONE)


def fleet() -> dict[str, Device]:
    devices = fleet_from_config(example_document(), known_types=set(MODELS))
    return {d.id: d for d in devices if d.id in PUMPS}


def write_telemetry(conn: psycopg.Connection[Any], device: Device, start: datetime,
                    end: datetime, *, step: float = 60.0,
                    overrides: dict[str, Any] | None = None) -> int:
    """The simulator's readings of one device, stored as the ingest stores them (its own
    write path: points, latest readings and the rollup queue, 20,000 rows a statement)."""
    rng = random.Random(f"test:{device.key}")
    n = 0
    rows: list[TelemetryRow] = []
    t = start.timestamp()
    while t < end.timestamp():
        ts_us = round(t * 1_000_000)
        for metric, value in reading(device, t, rng, overrides or {}).items():
            rows.append((SITE, device.id, ts_us, metric, None, value) if isinstance(value, str)
                        else (SITE, device.id, ts_us, metric, float(value), None))
        n += 1
        t += step
        if len(rows) >= 20_000:
            store_telemetry(conn, rows)
            rows = []
    store_telemetry(conn, rows)
    return n


def site(conn: psycopg.Connection[Any], now: datetime) -> None:
    load_site(conn, example_document(), now=now - timedelta(days=30))
    conn.commit()


def judge(conn: psycopg.Connection[Any], now: datetime) -> datetime:
    """Two ticks of the job, SETTLE apart: a period is judged once its data has held still."""
    store.fire_pump_job(conn, now)
    conn.commit()
    later = now + store.SETTLE
    store.fire_pump_job(conn, later)
    conn.commit()
    return later


def verdicts(conn: psycopg.Connection[Any]) -> dict[tuple[str, str, datetime], dict[str, Any]]:
    return {(r["device_id"], r["test"], r["period_start"]): r for r in conn.execute(
        "SELECT * FROM fire_pump_tests WHERE site_id = %s", (SITE,))}


def two_weeks_with_a_skipped_test(conn: psycopg.Connection[Any]) -> datetime:
    """Nine days of the fire-pump room, fire-pump-1's test timer off; returns `now`."""
    now = local(2026, 12, 1, 6)
    site(conn, now)
    pumps = fleet()
    for device in pumps.values():
        skip = {"auto_test": False} if device.id == "fire-pump-1" else None
        write_telemetry(conn, device, local(2026, 11, 22), now, overrides=skip)
    conn.commit()
    return judge(conn, now)


def test_a_skipped_weekly_test_is_a_gap_with_a_work_order_and_a_notification(
        conn: psycopg.Connection[Any]) -> None:
    now = two_weeks_with_a_skipped_test(conn)
    got = verdicts(conn)
    week = local(2026, 11, 23)
    missed = got[("fire-pump-1", "weekly_auto", week)]
    assert missed["status"] == "missed" and missed["reason"] == "no auto start"
    assert missed["period_end"] == local(2026, 11, 30) and missed["run_id"] is None
    done = got[("fire-pump-2", "weekly_auto", week)]
    assert done["status"] == "done" and done["work_order_id"] is None
    run = conn.execute("SELECT * FROM fire_pump_runs WHERE id = %s", (done["run_id"],)).fetchone()
    assert run["started_at"] == local(2026, 11, 23, 10) + timedelta(minutes=15)
    assert run["stopped_at"] - run["started_at"] == timedelta(minutes=10)
    assert run["mode"] == "auto" and run["pressure_reached"] > 1.0 and run["flow_max"] > 20
    # the week of 11-16 began before the log did; 11-30's has not ended: neither is judged
    assert {k[2] for k in got if k[1] == "weekly_auto"} == {week}
    assert not [k for k in got if k[1] == "monthly_manual"]  # no whole month yet
    # the jockey pump: every whole day from the first reading to the last midnight, all fine
    days = sorted(k[2] for k in got if k[1] == "jockey_daily")
    assert days == [local(2026, 11, 22) + timedelta(days=i) for i in range(9)]
    for day in days:
        check = got[("jockey-pump-1", "jockey_daily", day)]
        assert check["status"] == "done", check
        assert 15 <= check["details"]["starts"] <= 17
        assert 0.79 <= check["details"]["start_pressure"] <= 0.81
    # the gap opened a work order, and its opening queued notifications
    wo = conn.execute("SELECT * FROM work_orders WHERE id = %s",
                      (missed["work_order_id"],)).fetchone()
    assert wo["source"] == "preventive" and wo["device_id"] == "fire-pump-1"
    assert wo["severity"] == "major" and wo["zone_id"] == "fire-pump-room"
    assert "消防泵每周自动启泵试验" in wo["title"] and "missed" in wo["title"]
    assert "week of 2026-11-23" in wo["title"] and wo["opened_at"] == now
    queued = conn.execute("SELECT * FROM notification_outbox WHERE subject = 'work_order'"
                          " AND event = 'opened'").fetchall()
    assert queued and all(q["payload"]["work_order"]["id"] == wo["id"] for q in queued)
    assert conn.execute("SELECT count(*) AS n FROM work_orders").fetchone()["n"] == 1


def test_the_log_is_kept_exactly_once_across_reruns_and_racing_workers(
        conn: psycopg.Connection[Any], database: str) -> None:
    now = two_weeks_with_a_skipped_test(conn)

    def counts() -> dict[str, int]:
        return {t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"]  # noqa: S608
                for t in ("fire_pump_runs", "fire_pump_tests", "work_orders",
                          "notification_outbox")}

    before = counts()
    assert store.fire_pump_job(conn, now + timedelta(minutes=5)) == []  # a restart: nothing new
    conn.commit()
    assert counts() == before
    # a new day's data: two workers racing without the scheduler's lock still judge it once
    for device in fleet().values():
        skip = {"auto_test": False} if device.id == "fire-pump-1" else None
        write_telemetry(conn, device, now, local(2026, 12, 8, 6), overrides=skip)
    conn.commit()
    results: list[list[dict[str, Any]]] = []

    def worker(at: datetime) -> None:
        with psycopg.connect(database, row_factory=dict_row) as c:
            results.append(store.fire_pump_job(c, at))

    for at in (local(2026, 12, 8, 6), local(2026, 12, 8, 6) + store.SETTLE):
        threads = [threading.Thread(target=worker, args=(at,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    judged = sorted((j["device_id"], j["test"], j["period_start"]) for r in results for j in r)
    assert len(judged) == len(set(judged)) == 1 + 1 + 7  # one week for each fire pump, 7 days
    after = counts()
    assert after["work_orders"] == 1  # the second missed week is a repeat on the open ticket
    assert conn.execute("SELECT repeat_count FROM work_orders").fetchone()["repeat_count"] == 1
    got = verdicts(conn)
    assert got[("fire-pump-1", "weekly_auto", local(2026, 11, 30))]["status"] == "missed"
    assert got[("fire-pump-2", "weekly_auto", local(2026, 11, 30))]["status"] == "done"
    # the starts of the judged weeks are recorded, the monthly manual ones (12-02) among them
    modes = conn.execute("SELECT device_id, mode, count(*) AS n FROM fire_pump_runs"
                         " WHERE device_id LIKE 'fire-pump-%%' GROUP BY 1, 2 ORDER BY 1, 2"
                         ).fetchall()
    assert [(m["device_id"], m["mode"], m["n"]) for m in modes] == [
        ("fire-pump-1", "manual", 1), ("fire-pump-2", "auto", 2), ("fire-pump-2", "manual", 1)]


def test_history_arriving_out_of_order_is_waited_for_and_judged_whole(
        conn: psycopg.Connection[Any]) -> None:
    now = local(2026, 12, 1, 6)
    site(conn, now)
    pump = fleet()["fire-pump-2"]
    test_day = local(2026, 11, 23), local(2026, 11, 24)
    write_telemetry(conn, pump, local(2026, 11, 24), now)  # the newer part first
    conn.commit()
    judge(conn, now)
    assert not verdicts(conn)  # the log begins 11-24: no whole week yet
    write_telemetry(conn, pump, local(2026, 11, 21), test_day[0])  # a backfill, with a hole
    conn.commit()
    store.fire_pump_job(conn, now + timedelta(minutes=5))  # a whole week now: count noted
    conn.commit()
    assert not verdicts(conn)
    write_telemetry(conn, pump, *test_day)  # the rest arrives later: the count changed
    conn.commit()
    store.fire_pump_job(conn, now + timedelta(minutes=10))
    conn.commit()
    assert not verdicts(conn)
    judged = store.fire_pump_job(conn, now + timedelta(minutes=12))  # held still: judged
    conn.commit()
    assert [(j["test"], j["period_start"], j["status"]) for j in judged] == [
        ("weekly_auto", local(2026, 11, 23), "done")]
    scan = conn.execute("SELECT * FROM fire_pump_scans WHERE device_id = %s",
                        (pump.id,)).fetchone()
    assert scan["since"] == local(2026, 11, 21)
    runs = [r["started_at"] for r in conn.execute(
        "SELECT started_at FROM fire_pump_runs ORDER BY started_at")]
    assert runs == [local(2026, 11, 23, 10) + timedelta(minutes=15)]  # that week's, once


def test_days_a_backfill_has_not_reached_yet_are_not_missed(
        conn: psycopg.Connection[Any]) -> None:
    now = local(2026, 12, 1, 6)
    site(conn, now)
    jockey = fleet()["jockey-pump-1"]
    for start, end in ((local(2026, 11, 16), local(2026, 11, 20)),
                       (local(2026, 11, 20), local(2026, 11, 24)),
                       (local(2026, 11, 24), now)):  # the backfill, a minute at a time
        write_telemetry(conn, jockey, start, end)
        conn.commit()
        # days after the data so far ended more than a day ago: they could be judged
        # "silent", but the pump's history is still growing, so nothing is judged
        assert store.fire_pump_job(conn, now) == []
        conn.commit()
        now += store.SETTLE
    judged = store.fire_pump_job(conn, now)
    assert [j["status"] for j in judged] == ["done"] * 15  # 11-16 .. 11-30, all there


def test_a_silent_pump_misses_its_checks_a_day_after_they_end(
        conn: psycopg.Connection[Any]) -> None:
    now = local(2026, 11, 27, 6)
    site(conn, now)
    write_telemetry(conn, fleet()["jockey-pump-1"], local(2026, 11, 23), local(2026, 11, 24, 12))
    conn.commit()
    judge(conn, now)
    got = {k[2]: v for k, v in verdicts(conn).items()}
    assert {day.astimezone(ZONE).day: (v["status"], v["reason"]) for day, v in got.items()} == {
        23: ("done", None), 24: ("done", None),  # half a day of checks is a check
        25: ("missed", "no readings that day")}  # 11-26 ended less than a day ago: waits
    assert got[local(2026, 11, 25)]["work_order_id"] is not None


def test_a_month_without_a_manual_start_is_missed(conn: psycopg.Connection[Any]) -> None:
    now = local(2027, 1, 1, 6)
    site(conn, now)
    store.load_fire_pumps(conn, SITE, FirePumpSpec.model_validate(
        {"required": ["monthly_manual"], "min_pressure": 0.9}), now=now)
    pumps = fleet()
    write_telemetry(conn, pumps["fire-pump-1"], local(2026, 11, 30), now, step=300,
                    overrides={"manual_test": False})
    write_telemetry(conn, pumps["fire-pump-2"], local(2026, 11, 30), now, step=300)
    conn.commit()
    judge(conn, now)
    got = verdicts(conn)
    assert set(got) == {("fire-pump-1", "monthly_manual", local(2026, 12, 1)),
                        ("fire-pump-2", "monthly_manual", local(2026, 12, 1))}
    assert got[("fire-pump-1", "monthly_manual", local(2026, 12, 1))]["status"] == "missed"
    done = got[("fire-pump-2", "monthly_manual", local(2026, 12, 1))]
    assert done["status"] == "done"
    run = conn.execute("SELECT * FROM fire_pump_runs WHERE id = %s", (done["run_id"],)).fetchone()
    assert run["mode"] == "manual"
    assert run["started_at"].astimezone(ZONE).date().isoformat() == "2026-12-02"


def test_a_leaking_fire_main_fails_the_jockey_check(conn: psycopg.Connection[Any]) -> None:
    now = local(2026, 11, 25, 1)
    site(conn, now)
    write_telemetry(conn, fleet()["jockey-pump-1"], local(2026, 11, 23), now,
                    overrides={"cycle": 1200})
    conn.commit()
    judge(conn, now)
    got = verdicts(conn)
    assert [v["status"] for v in got.values()] == ["failed", "failed"]
    first = got[("jockey-pump-1", "jockey_daily", local(2026, 11, 23))]
    assert first["details"]["starts"] > 30 and "a leak?" in first["reason"]
    wo = conn.execute("SELECT title FROM work_orders WHERE id = %s",
                      (first["work_order_id"],)).fetchone()
    assert wo["title"].startswith("Jockey pump daily check 稳压泵每日检查 failed 不合格")


def test_the_api_answers_per_pump_and_period(conn: psycopg.Connection[Any], client: TestClient,
                                              make_token: MakeToken, api_clock: FakeClock
                                              ) -> None:
    api_clock.now = two_weeks_with_a_skipped_test(conn)
    url = "/api/v1/compliance/fire-pumps"
    week = {"site": SITE, "from": "2026-11-23", "to": "2026-11-29"}
    r = client.get(url, params=week, headers=make_token("viewer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["from"] == "2026-11-23" and body["timezone"] == "Asia/Shanghai"
    pumps = {p["device_id"]: p for p in body["pumps"]}
    assert list(pumps) == list(PUMPS) and pumps["jockey-pump-1"]["kind"] == "jockey"
    one = {p["test"]: p for p in pumps["fire-pump-1"]["periods"]}
    assert one["weekly_auto"]["status"] == "missed" and one["weekly_auto"]["work_order_id"]
    assert one["monthly_manual"]["status"] == "unjudged"  # the log began on 11-22
    assert pumps["fire-pump-1"]["starts"] == []
    two = {p["test"]: p for p in pumps["fire-pump-2"]["periods"]}
    run = two["weekly_auto"]["run"]
    assert two["weekly_auto"]["status"] == "done"
    assert run["mode"] == "auto" and run["duration_s"] == 600 and run["pressure_reached"] > 1
    assert pumps["fire-pump-2"]["starts"] == [run]
    jockey = pumps["jockey-pump-1"]["periods"]
    assert [p["status"] for p in jockey] == ["done"] * 7 and jockey[0]["details"]["starts"] > 10
    assert body["totals"] == {"missed": 1, "done": 8, "unjudged": 2}
    # the week before the log began is not a gap, only unjudged
    earlier = client.get(url, params={**week, "from": "2026-11-16", "to": "2026-11-22"},
                         headers=make_token("guard")).json()
    assert {p["test"]: p["status"] for p in earlier["pumps"][0]["periods"]}[
        "weekly_auto"] == "unjudged"
    # scoping and bad input
    conn.execute("INSERT INTO sites (id, name) VALUES ('elsewhere', 'Another estate')")
    conn.commit()
    assert client.get(url, params=week, headers=make_token("viewer", site=SITE)
                      ).status_code == 200
    assert client.get(url, params={"from": "2026-11-23"},
                      headers=make_token("viewer", site=SITE)).status_code == 200
    assert client.get(url, params=week, headers=make_token("viewer", site="elsewhere")
                      ).status_code == 403
    assert client.get(url, params={"from": "2026-11-23"},
                      headers=make_token("viewer")).status_code == 422
    assert client.get(url, params={**week, "site": "nowhere"},
                      headers=make_token("viewer")).status_code == 404
    assert client.get(url, params={**week, "to": "2026-11-01"},
                      headers=make_token("viewer")).status_code == 422
    assert client.get(url, params={**week, "from": "2024-01-01"},
                      headers=make_token("viewer")).status_code == 422
    assert client.get(url, params={**week, "from": "yesterday"},
                      headers=make_token("viewer")).status_code == 422
    assert client.get(url, params=week).status_code == 401


def test_the_weekly_report_lists_the_tests_and_the_missed_ones(
        conn: psycopg.Connection[Any]) -> None:
    now = two_weeks_with_a_skipped_test(conn)
    data = weekly.gather(conn, SITE, Week(2026, 48), now=now)
    assert [(t["device_id"], t["test"], t["status"]) for t in data.fire_pump_tests][:1] == [
        ("fire-pump-1", "weekly_auto", "missed")]
    assert len(data.fire_pump_tests) == 2 + 7
    assert [(s["device_id"], s["mode"]) for s in data.fire_pump_starts] == [
        ("fire-pump-2", "auto")]
    zh = weekly.to_html(data, "zh-CN")
    section = zh[zh.index("消防泵周期试验"):]
    assert "未做或不合格的试验 (1)" in section and "每周自动启泵" in section
    assert "消火栓泵" in section and "稳压泵每日检查" in section
    assert "未做</span>·无自动启泵" in "".join(section.split())  # the gap, and why
    assert "消防泵启泵记录" in section and "自动" in section and "1.0" in section
    en = weekly.to_html(data, "en")
    section = en[en.index("Fire-pump tests"):]
    assert "Missed or failed tests (1)" in section
    assert "notdone</span>·noautomaticstart" in "".join(section.split())
    assert "Weekly automatic start" in section and "automatic" in section
    assert section.count('data-fire-pump-test="missed"') == 1
    assert section.count('data-fire-pump-test="done"') == 8
