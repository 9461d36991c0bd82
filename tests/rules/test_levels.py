"""One fault, one ticket: a rule with severity levels, one alarm that rises and falls, one
ticket that follows the worst level reached; the old three-rule data migrated."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from caretaker.migrations import available, migrate
from rules.evaluate import due_at, evaluate_readings, evaluate_time
from rules.model import Reading, RuleError, parse_rule, rule_from_row
from tests.rules.helpers import SITE, T0, at, make_site, publish, rows, run, tick

LEVELS = [{"severity": "warning", "threshold": 4.5, "clear": 4.0, "for": "30s"},
          {"severity": "major", "threshold": 7.1, "clear": 6.3, "for": "10s"},
          {"severity": "critical", "threshold": 11.2, "clear": 9.0, "for": "5s"}]
SPEC: dict[str, Any] = {"id": "pump-vibration", "name": "Pump vibration", "metric": "vibration",
                        "device_type": "water_pump", "op": ">=", "levels": LEVELS}
LADDER = parse_rule("s", SPEC)


def feed(state: dict[str, Any], *points: tuple[float, float]) -> tuple[dict[str, Any], list]:
    readings = [Reading("s", "d", "vibration", at(t), v) for t, v in points]
    return evaluate_readings(LADDER, state, readings, device="d")


def changes(decisions: list) -> list[tuple[str, str | None]]:
    """The decisions that change the alarm (updates left out)."""
    return [(d.action, d.severity) for d in decisions if d.action != "update"]


def test_the_ladder_rises_and_falls_with_hysteresis_and_hold_per_level() -> None:
    assert LADDER.severity == "critical"  # a rule with levels is as severe as its worst
    st, d = feed({}, (0, 5.0))
    assert d == [] and due_at(LADDER, st) == at(30)  # warning's 30 s hold
    st, d = feed(st, (25, 8.0))
    assert d == [] and due_at(LADDER, st) == at(30)  # major's hold ends at 35
    st, d = evaluate_time(LADDER, st, at(30), device="d")
    assert changes(d) == [("raise", "warning")] and due_at(LADDER, st) == at(35)
    st, d = evaluate_time(LADDER, st, at(35), device="d")
    assert changes(d) == [("level", "major")] and "(>= 7.1, major)" in d[0].message
    st, d = feed(st, (36, 12.0), (40, 12.0))
    assert changes(d) == [] and due_at(LADDER, st) == at(41)
    st, d = feed(st, (41, 12.0))
    assert changes(d) == [("level", "critical")]
    all_d: list = []
    for t, v, expected in ((42, 10.0, []),                     # inside critical's band
                           (43, 8.5, [("level", "major")]),    # below 9.0: down one level
                           (44, 6.5, []),                      # inside major's band
                           (45, 6.0, [("level", "warning")]),
                           (46, 4.2, []),
                           (47, 3.9, [("clear", None)])):
        st, d = feed(st, (t, v))
        assert changes(d) == expected, t
        all_d += d
    assert st == {}
    assert not [x for x in all_d if x.action == "update"]  # nothing re-entered a level


def test_a_jump_raises_the_level_whose_hold_ran_out_and_falls_straight_to_the_right_one() -> None:
    st, d = feed({}, (0, 12.0))
    assert d == [] and due_at(LADDER, st) == at(5)
    st, d = evaluate_time(LADDER, st, at(5), device="d")
    assert changes(d) == [("raise", "critical")] and d[0].value == 12.0
    st, d = feed(st, (6, 5.0))  # straight from critical to warning's band
    assert changes(d) == [("level", "warning")]
    st, d = feed(st, (7, 2.0))
    assert changes(d) == [("clear", None)] and st == {}


def test_clear_hold_of_a_level_and_the_old_single_level_state() -> None:
    rule = parse_rule("s", {**SPEC, "levels": [
        {"severity": "minor", "threshold": 5, "clear": 4},
        {"severity": "major", "threshold": 8, "clear": 7, "clear_for": "1m"}]})
    st, d = evaluate_readings(rule, {}, [Reading("s", "d", "vibration", at(0), 9)], device="d")
    assert changes(d) == [("raise", "major")]
    st, d = evaluate_readings(rule, st, [Reading("s", "d", "vibration", at(10), 6)], device="d")
    assert d == [] and due_at(rule, st) == at(70)
    st, d = evaluate_time(rule, st, at(70), device="d")
    assert changes(d) == [("level", "minor")]
    # a state stored before levels existed (pending as one number) still counts its hold
    held = parse_rule("s", {"id": "h", "metric": "vibration", "op": ">=", "threshold": 7,
                            "for": "30s"})
    old = {"pending": at(0).timestamp(), "last_ts": at(0).timestamp(), "last_value": 8.0}
    assert due_at(held, old) == at(30)
    _, d = evaluate_time(held, old, at(30), device="d")
    assert changes(d) == [("raise", "major")]


@pytest.mark.parametrize(("levels", "extra", "expected"), [
    ([LEVELS[1], LEVELS[0]], {}, "least severe first"),
    ([LEVELS[0], {**LEVELS[1], "severity": "warning"}], {}, "each severity once"),
    ([LEVELS[0], {**LEVELS[1], "threshold": 4.0, "clear": 3.5}], {}, "must be higher"),
    ([{**LEVELS[0], "clear": 5.0}], {}, "must not lie above"),
    ([LEVELS[0], {**LEVELS[1], "clear": 3.0}], {}, "must not lie inside"),
    (LEVELS, {"threshold": 4.5}, "not both"),
    (LEVELS, {"severity": "major"}, "worst level's severity"),
    (LEVELS, {"op": "=="}, "ordering op"),
    ([], {}, "at least 1"),
])
def test_bad_levels_are_refused_naming_why(levels: list[dict[str, Any]], extra: dict[str, Any],
                                           expected: str) -> None:
    with pytest.raises(RuleError, match=expected):
        parse_rule("s", {**SPEC, "levels": levels, **extra})


def test_levels_of_a_falling_condition_and_round_trip() -> None:
    low = parse_rule("s", {"id": "p", "metric": "pressure", "op": "<", "levels": [
        {"severity": "minor", "threshold": 0.3, "clear": 0.35},
        {"severity": "critical", "threshold": 0.1, "clear": 0.2}]})
    _, d = evaluate_readings(low, {}, [Reading("s", "d", "pressure", at(0), 0.05)], device="d")
    assert changes(d) == [("raise", "critical")]
    assert parse_rule("s", low.definition()) == low
    params = LADDER.params()
    assert params["levels"][0] == {"severity": "warning", "threshold": 4.5, "clear": 4.0,
                                   "for": 30.0}


# ---- through the database: one alarm, one ticket ----------------------------------------

def test_one_alarm_and_one_ticket_from_warning_to_critical_and_back(
        conn: psycopg.Connection) -> None:
    make_site(conn, rules=[SPEC])
    publish(conn, "pump-1", at(0), vibration=5.0)
    run(conn, at(0.5))
    tick(conn, at(30))
    [alarm] = rows(conn, "SELECT * FROM alarms")
    assert (alarm["severity"], alarm["peak_severity"]) == ("warning", "warning")
    assert rows(conn, "SELECT * FROM work_orders") == []  # open_at minor: a warning opens none
    publish(conn, "pump-1", at(40), vibration=8.0)
    publish(conn, "pump-1", at(50), vibration=8.2)
    run(conn, at(50.5))
    [wo] = rows(conn, "SELECT * FROM work_orders")
    assert (wo["severity"], wo["priority"], wo["rule_id"]) == ("major", 2, "pump-vibration")
    assert wo["respond_by"] == at(50.5) + timedelta(minutes=30)
    assert wo["resolve_by"] == at(50.5) + timedelta(hours=24)
    publish(conn, "pump-1", at(60), vibration=12.0)
    run(conn, at(60.5))
    tick(conn, at(65))  # critical's 5 s hold runs out on the clock
    [wo] = rows(conn, "SELECT * FROM work_orders")
    assert (wo["severity"], wo["priority"]) == ("critical", 1)
    # the deadlines critical gives from when the ticket was opened
    assert wo["respond_by"] == at(50.5) + timedelta(minutes=15)
    assert wo["resolve_by"] == at(50.5) + timedelta(hours=4)
    for t, v in ((70, 8.0), (80, 5.0), (90, 2.0)):
        publish(conn, "pump-1", at(t), vibration=v)
        run(conn, at(t + 0.5))
    [alarm] = rows(conn, "SELECT * FROM alarms")
    assert (alarm["state"], alarm["severity"], alarm["peak_severity"]) == (
        "cleared", "warning", "critical")
    assert alarm["work_order_id"] == wo["id"]
    [wo] = rows(conn, "SELECT * FROM work_orders")  # never lowered, still the only one
    assert (wo["severity"], wo["priority"], wo["state"]) == ("critical", 1, "open")
    history = [(h["action"], h["note"].split(":")[0]) for h in rows(
        conn, "SELECT action, note FROM alarm_history ORDER BY id")]
    assert [a for a, _ in history] == ["raised", "severity_raised", "severity_raised",
                                       "severity_lowered", "severity_lowered", "cleared"]
    assert [n for a, n in history if a.startswith("severity")] == [
        "warning -> major", "major -> critical", "critical -> major", "major -> warning"]
    wo_history = [h["action"] for h in rows(conn, "SELECT action FROM work_order_history"
                                                  " ORDER BY id")]
    assert wo_history == ["opened", "severity_raised", "alarm_cleared"]
    assert rows(conn, "SELECT * FROM rule_state") == []


def test_alarms_api_shows_and_filters_the_peak(conn: psycopg.Connection, client: Any,
                                               make_token: Any) -> None:
    make_site(conn, rules=[SPEC])
    publish(conn, "pump-1", at(0), vibration=12.0)
    publish(conn, "pump-1", at(5), vibration=12.0)
    publish(conn, "pump-1", at(6), vibration=8.0)
    run(conn, at(7))
    viewer = make_token("viewer", site=SITE)
    page = client.get("/api/v1/alarms", params={"peak_severity": "critical"},
                      headers=viewer).json()
    [alarm] = page["items"]
    assert (alarm["severity"], alarm["peak_severity"]) == ("major", "critical")
    assert client.get("/api/v1/alarms", params={"severity": "critical"},
                      headers=viewer).json()["total"] == 0
    rule = client.get(f"/api/v1/rules/{SITE}/pump-vibration", headers=viewer).json()
    assert [lv["severity"] for lv in rule["levels"]] == ["warning", "major", "critical"]
    assert rule["levels"][0]["for"] == "30s" and rule["severity"] == "critical"
    sup = make_token("supervisor", site=SITE)
    r = client.patch(f"/api/v1/rules/{SITE}/pump-vibration", headers=sup,
                     json={"levels": LEVELS[:2]})
    assert r.status_code == 200, r.text
    assert r.json()["severity"] == "major" and len(r.json()["levels"]) == 2
    r = client.patch(f"/api/v1/rules/{SITE}/pump-vibration", headers=sup,
                     json={"threshold": 7.1})
    assert r.status_code == 200 and r.json()["levels"] is None
    r = client.patch(f"/api/v1/rules/{SITE}/pump-vibration", headers=sup,
                     json={"levels": [LEVELS[1], LEVELS[0]]})
    assert r.status_code == 422 and "least severe first" in r.json()["error"]["message"]


def test_suppressed_then_unsuppressed_alarm_opens_its_ticket_at_the_peak(
        conn: psycopg.Connection) -> None:
    make_site(conn, rules=[SPEC])
    conn.execute("INSERT INTO maintenance_windows (site_id, id, device_id, starts_at, ends_at,"
                 " reason) VALUES (%s, 'w', 'pump-1', %s, %s, 'bearing swap')",
                 (SITE, at(-60), at(100)))
    conn.commit()
    publish(conn, "pump-1", at(0), vibration=12.0)
    publish(conn, "pump-1", at(5), vibration=12.0)
    publish(conn, "pump-1", at(6), vibration=5.0)
    run(conn, at(7))
    assert rows(conn, "SELECT * FROM work_orders") == []
    tick(conn, at(101))
    [wo] = rows(conn, "SELECT * FROM work_orders")
    assert wo["severity"] == "critical"


# ---- existing data: the example's three vibration rules become one -----------------------

OLD_RULES: list[dict[str, Any]] = [
    {"id": "pump-vibration-warning", "name": "Pump vibration zone C", "device_type": "water_pump",
     "metric": "vibration", "op": ">=", "threshold": 4.5, "clear": 4.0, "for": "30s",
     "severity": "warning"},
    {"id": "pump-vibration-major", "name": "Pump vibration zone C/D", "device_type": "water_pump",
     "metric": "vibration", "op": ">=", "threshold": 7.1, "clear": 6.3, "for": "10s",
     "severity": "major"},
    {"id": "pump-vibration-critical", "name": "Pump vibration zone D",
     "device_type": "water_pump", "metric": "vibration", "op": ">=", "threshold": 11.2,
     "clear": 9.0, "for": "5s", "severity": "critical",
     "inhibits": {"rules": ["pump-vibration-major", "pump-vibration-warning"],
                  "scope": "device"}},
    {"id": "mains-lost", "name": "Mains lost", "device": "meter-main", "metric": "voltage",
     "op": "<", "threshold": 200, "severity": "critical",
     "inhibits": ["pump-vibration-major", "mains-lost-2"]},
    # same metric and scope but the same severity as a member: not a level of it
    {"id": "bearing-hot", "device_type": "water_pump", "metric": "bearing_temp", "op": ">",
     "threshold": 80, "severity": "major"},
    {"id": "bearing-hotter", "device_type": "water_pump", "metric": "bearing_temp", "op": ">",
     "threshold": 90, "severity": "major"},
]


@pytest.fixture
def before_011(pg_server: Any) -> Iterator[psycopg.Connection]:
    """A new database migrated up to (not including) 011: the schema the old rules lived in."""
    base = pg_server.url.rsplit("/", 1)[0]
    name = f"m_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base + "/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        with psycopg.connect(f"{base}/{name}", row_factory=dict_row) as c:
            c.execute("CREATE TABLE schema_migrations (version int PRIMARY KEY, name text NOT"
                      " NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL"
                      " DEFAULT now())")
            for mig in available():
                if mig.version < 11:
                    c.execute(mig.sql)
                    c.execute("INSERT INTO schema_migrations (version, name, checksum)"
                              " VALUES (%s, %s, %s)", (mig.version, mig.name, mig.checksum))
            c.commit()
            yield c
    finally:
        with psycopg.connect(base + "/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _old_alarm(conn: psycopg.Connection, device: str, rule: str, severity: str, state: str,
               wo: int | None = None) -> int:
    row = conn.execute(
        "INSERT INTO alarms (site_id, device_id, rule_id, severity, state, message, metric,"
        " first_value, last_value, raised_at, last_at, work_order_id, cleared_at)"
        " VALUES (%s, %s, %s, %s, %s, 'old', 'vibration', 12, 12, %s, %s, %s, %s) RETURNING id",
        (SITE, device, rule, severity, state, T0, T0, wo,
         T0 if state == "cleared" else None)).fetchone()
    assert row is not None
    return int(row["id"])


def _old_ticket(conn: psycopg.Connection, device: str, rule: str, severity: str) -> int:
    row = conn.execute(
        "INSERT INTO work_orders (site_id, device_id, rule_id, source, severity, priority,"
        " title, opened_at, respond_by, resolve_by, updated_at)"
        " VALUES (%s, %s, %s, 'alarm', %s, %s, 'old', %s, %s, %s, %s) RETURNING id",
        (SITE, device, rule, severity, {"major": 2, "critical": 1}[severity], T0,
         T0 + timedelta(minutes=30), T0 + timedelta(hours=4), T0)).fetchone()
    assert row is not None
    return int(row["id"])


def test_migration_011_merges_the_old_three_rules_their_alarms_and_state(
        before_011: psycopg.Connection) -> None:
    conn = before_011
    make_site(conn, rules=OLD_RULES)
    conn.execute("UPDATE devices SET overrides = %s WHERE id = 'pump-2'",
                 (Jsonb({"pump-vibration-major": {"threshold": 7.5, "severity": "x"}}),))
    # pump-1: all three fired (the critical one inhibiting the others), two tickets
    major_wo = _old_ticket(conn, "pump-1", "pump-vibration-major", "major")
    critical_wo = _old_ticket(conn, "pump-1", "pump-vibration-critical", "critical")
    warning = _old_alarm(conn, "pump-1", "pump-vibration-warning", "warning", "active")
    major = _old_alarm(conn, "pump-1", "pump-vibration-major", "major", "acknowledged",
                       major_wo)
    critical = _old_alarm(conn, "pump-1", "pump-vibration-critical", "critical", "active",
                          critical_wo)
    # pump-2: an old cleared alarm; pump-3: a warning firing alone
    old = _old_alarm(conn, "pump-2", "pump-vibration-major", "major", "cleared")
    pump3 = _old_alarm(conn, "pump-3", "pump-vibration-warning", "warning", "active")
    for device, rule, state in (
            ("pump-1", "pump-vibration-warning", {"firing": True, "last_ts": 100.0}),
            ("pump-1", "pump-vibration-major", {"firing": True, "last_ts": 130.0}),
            ("pump-1", "pump-vibration-critical", {"firing": True, "last_ts": 120.0}),
            ("pump-2", "pump-vibration-warning", {"pending": 50.0, "last_ts": 60.0}),
            ("pump-3", "pump-vibration-warning", {"firing": True, "last_ts": 0.0})):
        conn.execute("INSERT INTO rule_state (site_id, rule_id, device_id, state, firing,"
                     " updated_at) VALUES (%s, %s, %s, %s, %s, %s)",
                     (SITE, rule, device, Jsonb(state), bool(state.get("firing")), T0))
    conn.commit()

    applied = [m.version for m in migrate(conn)]
    assert 11 in applied

    by_id = {r["id"]: r for r in rows(conn, "SELECT * FROM rules")}
    assert set(by_id) == {"pump-vibration", "mains-lost", "bearing-hot", "bearing-hotter"}
    merged = rule_from_row(by_id["pump-vibration"])
    assert merged.kind == "threshold" and merged.severity == "critical"
    assert [(lv.severity, lv.threshold, lv.clear, lv.for_) for lv in merged.levels or ()] == [
        ("warning", 4.5, 4.0, timedelta(seconds=30)), ("major", 7.1, 6.3, timedelta(seconds=10)),
        ("critical", 11.2, 9.0, timedelta(seconds=5))]
    assert merged.inhibits is None and merged.name == "Pump vibration zone C"
    assert sorted(by_id["mains-lost"]["inhibits"]["rules"]) == ["mains-lost-2", "pump-vibration"]
    overrides = rows(conn, "SELECT overrides FROM devices WHERE id = 'pump-2'")[0]["overrides"]
    assert list(overrides) == ["pump-vibration"]
    assert [lv["threshold"] for lv in overrides["pump-vibration"]["levels"]] == [4.5, 7.5, 11.2]
    assert merged.for_device(overrides).ladder()[1].threshold == 7.5

    alarms = {a["id"]: a for a in rows(conn, "SELECT * FROM alarms")}
    assert {a["rule_id"] for a in alarms.values()} == {"pump-vibration"}
    live = [a for a in alarms.values() if a["state"] != "cleared"]
    assert sorted((a["device_id"], a["id"]) for a in live) == [("pump-1", critical),
                                                               ("pump-3", pump3)]
    assert alarms[critical]["peak_severity"] == "critical"
    assert alarms[critical]["work_order_id"] == critical_wo
    assert [alarms[i]["cleared_by"] for i in (warning, major)] == ["migration", "migration"]
    assert alarms[old]["cleared_by"] is None  # history stays as it was
    notes = [h["note"] for h in rows(conn, "SELECT note FROM alarm_history WHERE alarm_id = %s",
                                     critical)]
    assert notes == ["rules pump-vibration-warning, pump-vibration-major, pump-vibration-critical"
                     f" became rule pump-vibration with levels; alarm(s) {warning}, {major}"
                     " merged into this one"]
    assert {w["rule_id"] for w in rows(conn, "SELECT rule_id FROM work_orders")} == {
        "pump-vibration"}
    [note] = rows(conn, "SELECT note FROM work_order_history WHERE work_order_id = %s", major_wo)
    assert note["note"] == f"alarm {major} merged into alarm {critical}, whose ticket is" \
                           f" #{critical_wo}"

    states = {(s["rule_id"], s["device_id"]): s["state"] for s in rows(
        conn, "SELECT * FROM rule_state")}
    assert states == {
        ("pump-vibration", "pump-1"): {"firing": True, "level": 2, "in_trigger": True,
                                       "last_value": 12.0, "last_ts": 130.0},
        ("pump-vibration", "pump-3"): {"firing": True, "in_trigger": True, "last_value": 12.0,
                                       "last_ts": 0.0}}

    # the rules engine carries on from there: pump-1 calms down, pump-3 gets worse
    conn.execute("UPDATE devices SET overrides = '{}'")
    conn.commit()
    publish(conn, "pump-1", at(0), vibration=2.0)
    publish(conn, "pump-3", at(0), vibration=8.0)
    publish(conn, "pump-3", at(10), vibration=8.0)
    run(conn, at(11))
    pump1 = rows(conn, "SELECT * FROM alarms WHERE id = %s", critical)[0]
    assert pump1["state"] == "cleared" and pump1["cleared_by"] == "system"
    pump3_alarm = rows(conn, "SELECT * FROM alarms WHERE id = %s", pump3)[0]
    assert (pump3_alarm["severity"], pump3_alarm["state"]) == ("major", "active")
    [ticket] = rows(conn, "SELECT * FROM work_orders WHERE device_id = 'pump-3'")
    assert (ticket["rule_id"], ticket["severity"]) == ("pump-vibration", "major")
    conn.commit()
    assert migrate(conn) == []


def test_device_overrides_of_levels_and_one_that_does_not_fit(conn: psycopg.Connection) -> None:
    make_site(conn, rules=[SPEC])
    low = [{**LEVELS[0], "threshold": 2.0, "clear": 1.5}, *LEVELS[1:]]
    conn.execute("UPDATE devices SET overrides = %s WHERE id = 'pump-1'",
                 (Jsonb({"pump-vibration": {"levels": low}}),))
    # a single threshold does not fit a rule with levels: pump-2 keeps the rule's own
    conn.execute("UPDATE devices SET overrides = %s WHERE id = 'pump-2'",
                 (Jsonb({"pump-vibration": {"threshold": 1.0}}),))
    conn.commit()
    for t in (0, 40):
        publish(conn, "pump-1", at(t), vibration=3.0)
        publish(conn, "pump-2", at(t), vibration=5.0)
    run(conn, at(41))
    got = {a["device_id"]: a["severity"] for a in rows(conn, "SELECT * FROM alarms")}
    assert got == {"pump-1": "warning", "pump-2": "warning"}
    assert rows(conn, "SELECT * FROM dead_letters") == []
