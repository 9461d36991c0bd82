"""Early warning end to end on the real database: history in, one preventive ticket out."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from caretaker.site_config import example_document
from rules import forecast_job
from rules.forecast_config import load_spec, parse_spec, save_spec
from stack.app import load_site
from tests.rules.helpers import SITE, T0, make_site, publish, rows, run

DAY = timedelta(days=1)
STEP = timedelta(minutes=10)


def history(conn: psycopg.Connection[Any], device: str, start: datetime, end: datetime,
            level: Any, *, seed: int = 1) -> None:
    """Vibration readings every 10 min: level(days since T0) + a daily cycle + noise."""
    rng = random.Random(seed)
    at = start
    while at < end:
        days = (at - T0) / DAY
        value = level(days) + 0.3 * math.cos(2 * math.pi * at.hour / 24) + rng.gauss(0, 0.05)
        publish(conn, device, at, commit=False, vibration=round(value, 3))
        at += STEP
    conn.execute("DELETE FROM ingest_events")  # history only: the rules engine need not see it
    conn.commit()


def forecast_pass(conn: psycopg.Connection[Any], now: datetime) -> int:
    with conn.transaction():
        return forecast_job.run(conn, now)


def preventive(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return rows(conn, "SELECT w.*, r.source_ref FROM work_orders w JOIN work_order_refs r"
                      " ON r.work_order_id = w.id WHERE w.source = 'preventive' ORDER BY w.id")


def state(conn: psycopg.Connection[Any], device: str) -> dict[str, Any]:
    [row] = rows(conn, "SELECT * FROM forecasts WHERE device_id = %s", device)
    return row


def notes(conn: psycopg.Connection[Any], wo_id: int) -> list[dict[str, Any]]:
    return rows(conn, "SELECT action, to_state, actor, note FROM work_order_history"
                      " WHERE work_order_id = %s ORDER BY id", wo_id)


def rising(days: float) -> float:
    """0.8 mm/s per day, reaching 4.5 at T0: the daily peak meets 7.1 about 2.6 days later."""
    return 4.5 + 0.8 * days


def setup(conn: psycopg.Connection[Any]) -> None:
    make_site(conn)
    save_spec(conn, SITE, parse_spec({"rules": ["vib-major"]}), now=T0)
    conn.commit()
    history(conn, "pump-1", T0 - 5 * DAY, T0, rising)
    history(conn, "pump-2", T0 - 5 * DAY, T0, lambda d: 2.0, seed=2)


def test_a_drift_opens_one_ticket_and_a_flat_trend_withdraws_it(
        conn: psycopg.Connection) -> None:
    setup(conn)
    assert forecast_pass(conn, T0) == 3  # pumps 1-3 (pump-3 has no history: no estimate)
    [wo] = preventive(conn)
    assert wo["device_id"] == "pump-1" and wo["rule_id"] == "vib-major"
    assert wo["source_ref"] == "forecast:rs/pump-1/vib-major#1"
    assert wo["state"] == "open" and wo["severity"] == "minor"
    one = state(conn, "pump-1")
    assert one["state"] == "warned" and one["work_order_id"] == wo["id"]
    assert one["confidence"] >= 0.99
    assert timedelta(days=1.5) < one["expected_at"] - T0 < timedelta(days=3.5)
    assert one["earliest_at"] <= one["expected_at"]
    # the description says when (site time, here UTC), between when, and how sure
    expected = one["expected_at"].strftime("%Y-%m-%d %H:%M")
    assert expected in wo["description"] and "(UTC)" in wo["description"]
    assert "probability of crossing within 7 d" in wo["description"]
    assert state(conn, "pump-2")["state"] == "idle"
    assert state(conn, "pump-3")["points"] == 0

    # the next passes open nothing more: not due yet, then due with the same estimate
    assert forecast_pass(conn, T0 + timedelta(minutes=1)) == 0
    assert forecast_pass(conn, T0 + timedelta(minutes=3)) == 1  # pump-3: no estimate yet
    forecast_pass(conn, T0 + timedelta(hours=1, minutes=1))
    assert len(preventive(conn)) == 1
    assert [n["action"] for n in notes(conn, wo["id"])] == ["opened"]

    # the drift stops: the vibration holds at 4.5 for five days and the ticket is withdrawn
    history(conn, "pump-1", T0, T0 + 5 * DAY, lambda d: 4.5)
    history(conn, "pump-2", T0, T0 + 5 * DAY, lambda d: 2.0, seed=3)
    forecast_pass(conn, T0 + 5 * DAY)
    [wo] = preventive(conn)
    assert wo["state"] == "cancelled"
    last = notes(conn, wo["id"])[-1]
    assert last["to_state"] == "cancelled" and last["actor"] == "forecast"
    assert last["note"].startswith("forecast withdrawn")
    assert state(conn, "pump-1")["state"] == "idle"
    assert state(conn, "pump-1")["generation"] == 1


def test_the_estimate_moving_is_a_note_and_the_real_alarm_quiets_it(
        conn: psycopg.Connection) -> None:
    setup(conn)
    forecast_pass(conn, T0)
    [wo] = preventive(conn)
    # the drift speeds up: 2 mm/s a day for a day; the expected crossing comes much sooner
    history(conn, "pump-1", T0, T0 + DAY, lambda d: 4.5 + 2.0 * d)
    forecast_pass(conn, T0 + DAY)
    [again] = preventive(conn)
    assert again["id"] == wo["id"]
    moved = notes(conn, wo["id"])[-1]
    assert moved["actor"] == "forecast" and moved["note"].startswith("forecast moved")
    assert state(conn, "pump-1")["noted_expected_at"] == state(conn, "pump-1")["expected_at"]

    # the threshold is crossed: the rules engine raises the real alarm (and its fault ticket)
    publish(conn, "pump-1", T0 + DAY + timedelta(minutes=1), vibration=7.5)
    run(conn, T0 + DAY + timedelta(minutes=1))
    [alarm] = rows(conn, "SELECT * FROM alarms WHERE device_id = 'pump-1'")
    forecast_pass(conn, T0 + DAY + timedelta(hours=1, minutes=2))
    quiet = notes(conn, wo["id"])[-1]
    assert "the alarm fired" in quiet["note"] and f"#{alarm['work_order_id']}" in quiet["note"]
    assert state(conn, "pump-1")["state"] == "alarm"
    count = len(notes(conn, wo["id"]))
    history(conn, "pump-1", T0 + DAY + timedelta(minutes=5), T0 + 2 * DAY,
            lambda d: 6.5 + 2.0 * (d - 1))
    forecast_pass(conn, T0 + 2 * DAY)
    assert len(notes(conn, wo["id"])) == count  # quiet: nothing more said
    assert len(preventive(conn)) == 1


def test_a_restart_remembers_and_people_closing_it_is_respected(
        conn: psycopg.Connection) -> None:
    setup(conn)
    forecast_pass(conn, T0)
    [wo] = preventive(conn)
    # an engineer checks the pump and closes the ticket; the same forecast opens no other
    conn.execute("UPDATE work_orders SET state = 'closed', closed_at = %s WHERE id = %s",
                 (T0 + timedelta(hours=2), wo["id"]))
    conn.commit()
    forecast_pass(conn, T0 + timedelta(hours=3))  # a new process: all it knows is the table
    assert len(preventive(conn)) == 1
    assert state(conn, "pump-1")["state"] == "handled"


def test_the_example_site_forecasts_its_listed_rules(conn: psycopg.Connection) -> None:
    load_site(conn, example_document(), now=T0)
    spec = load_spec(conn, "riverside")
    found = forecast_job.targets(conn, "riverside", spec)
    pairs = {(t.device_id, t.rule.id) for t in found}
    assert ("tank-fire", "fire-tank-level-low") in pairs
    assert ("pump-1", "pump-vibration") in pairs
    vibration = next(t for t in found if t.rule.id == "pump-vibration")
    assert (vibration.level, vibration.threshold) == ("warning", 4.5)  # its least severe level
    assert all(t.rule.kind == "threshold" for t in found)
    assert not any(t.rule.id == "tank-level-high" for t in found)  # not listed


def test_the_estimates_are_listed_by_the_api_within_the_tokens_site(
        conn: psycopg.Connection, client: TestClient,
        make_token: Callable[..., dict[str, str]]) -> None:
    setup(conn)
    forecast_pass(conn, T0)
    reader = make_token("viewer", site=SITE)
    page = client.get("/api/v1/forecasts", headers=reader).json()
    assert page["total"] == 3
    first = page["items"][0]  # the soonest expected crossing first
    assert (first["device_id"], first["state"]) == ("pump-1", "warned")
    assert first["work_order_id"] is not None and first["confidence"] >= 0.99
    warned = client.get("/api/v1/forecasts", headers=reader, params={"state": "warned"}).json()
    assert [i["device_id"] for i in warned["items"]] == ["pump-1"]
    conn.execute("INSERT INTO sites (id, name) VALUES ('elsewhere', 'Another site')")
    conn.commit()
    other = make_token("viewer", site="elsewhere")
    assert client.get("/api/v1/forecasts", headers=other).json()["total"] == 0
    assert client.get("/api/v1/forecasts", headers=other,
                      params={"site": SITE}).status_code == 403
    assert client.get("/api/v1/forecasts").status_code == 401
    assert client.get("/api/v1/forecasts", headers=reader,
                      params={"state": "bogus"}).status_code == 422
    listed = client.get("/api/v1/work-orders", headers=make_token("admin"),
                        params={"source": "preventive"}).json()
    assert [w["device_id"] for w in listed["items"]] == ["pump-1"]


def test_a_condition_taken_out_of_the_section_withdraws_its_ticket(
        conn: psycopg.Connection) -> None:
    setup(conn)
    forecast_pass(conn, T0)
    [wo] = preventive(conn)
    save_spec(conn, SITE, parse_spec({"rules": []}), now=T0)
    conn.commit()
    forecast_pass(conn, T0 + timedelta(minutes=5))
    [wo] = preventive(conn)
    assert wo["state"] == "cancelled"
    assert "no longer forecast" in notes(conn, wo["id"])[-1]["note"]
    assert rows(conn, "SELECT * FROM forecasts") == []
