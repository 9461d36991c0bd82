"""Rule evaluation without I/O: each kind's edges, hold times, hysteresis, flapping."""

from datetime import UTC, datetime, timedelta

import pytest

from rules.evaluate import due_at, evaluate_offline, evaluate_readings, evaluate_time
from rules.model import Reading, RuleError, parse_rule

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def feed(rule, state, *points, metric="vibration"):
    readings = [Reading("s", "d", metric, at(t), v) for t, v in points]
    return evaluate_readings(rule, state, readings, device="d")


def actions(decisions):
    return [d.action for d in decisions]


VIB = parse_rule("s", {"id": "vib", "metric": "vibration", "op": ">=", "threshold": 7.1,
                       "clear": 6.5, "severity": "major"})
HELD = parse_rule("s", {"id": "held", "metric": "vibration", "op": ">=", "threshold": 7.1,
                        "for": "30s", "severity": "major"})


def test_exactly_at_threshold_fires_for_inclusive_op_only() -> None:
    _, d = feed(VIB, {}, (0, 7.1))
    assert actions(d) == ["raise"]
    strict = parse_rule("s", {"id": "x", "metric": "vibration", "op": ">", "threshold": 7.1})
    _, d = feed(strict, {}, (0, 7.1))
    assert d == []
    _, d = feed(VIB, {}, (0, 7.0999))
    assert d == []


def test_clear_inside_hysteresis_band_keeps_alarm_and_below_clear_clears() -> None:
    st, d = feed(VIB, {}, (0, 8.0))
    assert actions(d) == ["raise"]
    st, d = feed(VIB, st, (1, 6.8), (2, 6.5))  # 6.5 is the clear value: still inside
    assert d == [] and st["firing"]
    st, d = feed(VIB, st, (3, 6.49))
    assert actions(d) == ["clear"] and st == {}


def test_hold_time_fires_on_reading_or_clock_and_is_reset_when_interrupted() -> None:
    st, d = feed(HELD, {}, (0, 8), (10, 8))
    assert d == [] and due_at(HELD, st) == at(30)
    _, d = evaluate_time(HELD, st, at(29.9), device="d")
    assert d == []
    st2, d = evaluate_time(HELD, st, at(30), device="d")
    assert actions(d) == ["raise"] and st2["firing"]
    # interrupted at 20 s: nothing at 30 s, and the hold restarts from the next high reading
    st3, d = feed(HELD, st, (20, 7.0))
    assert d == [] and due_at(HELD, st3) is None
    _, d = evaluate_time(HELD, st3, at(31), device="d")
    assert d == []
    st4, d = feed(HELD, st3, (25, 9), (54, 9))
    assert d == []
    _, d = feed(HELD, st4, (55, 9))
    assert actions(d) == ["raise"]


def test_flapping_around_threshold_is_one_raise_and_counted_retriggers() -> None:
    st: dict[str, object] = {}
    decisions = []
    for i, v in enumerate([7.2, 6.9, 7.3, 6.8, 7.4, 6.6, 7.2]):
        st, d = feed(VIB, st, (i, v))
        decisions += d
    assert actions(decisions).count("raise") == 1
    assert "clear" not in actions(decisions)
    assert sum(d.retrigger for d in decisions) == 3


def test_clear_for_holds_the_alarm_through_short_dips() -> None:
    rule = parse_rule("s", {"id": "x", "metric": "vibration", "op": ">=", "threshold": 7.1,
                            "clear": 6.5, "clear_for": "1m"})
    st, _ = feed(rule, {}, (0, 8))
    st, d = feed(rule, st, (10, 5), (20, 7.5), (30, 5))
    assert "clear" not in actions(d)
    assert due_at(rule, st) == at(90)
    _, d = evaluate_time(rule, st, at(90), device="d")
    assert actions(d) == ["clear"]


def test_n_readings_in_a_row() -> None:
    rule = parse_rule("s", {"id": "door", "kind": "count", "metric": "door_fault",
                            "op": ">=", "threshold": 1, "count": 3})
    st, d = feed(rule, {}, (0, 1), (1, 1), (2, 0), (3, 1), (4, 1), metric="door_fault")
    assert d == [] and st["streak"] == 2
    st, d = feed(rule, st, (5, 1), metric="door_fault")
    assert actions(d) == ["raise"]
    st, d = feed(rule, st, (6, 1), metric="door_fault")
    assert actions(d) == ["update"]
    st, d = feed(rule, st, (7, 0), metric="door_fault")
    assert actions(d) == ["clear"] and st == {}


def test_rate_of_change_over_window() -> None:
    rule = parse_rule("s", {"id": "drop", "kind": "rate", "metric": "level", "op": "<=",
                            "threshold": -20, "window": "10m"})
    st, d = feed(rule, {}, (0, 90), (300, 80), (599, 71), metric="level")
    assert d == []  # -19 in 599 s
    st, d = feed(rule, st, (600, 70), metric="level")
    assert actions(d) == ["raise"] and d[0].value == -20
    # the window slides: the 90 % sample falls out, the change shrinks, the alarm clears
    st, d = feed(rule, st, (1000, 70), metric="level")
    assert actions(d) == ["clear"]


def test_out_of_order_and_text_readings_are_ignored() -> None:
    st, _ = feed(HELD, {}, (10, 8))
    st2, d = feed(HELD, st, (5, 1))
    assert st2 == st and d == []
    st3, d = evaluate_readings(HELD, st, [Reading("s", "d", "vibration", at(11), None, "x")],
                               device="d")
    assert st3 == st and d == []


def test_offline_by_timeout_and_last_will() -> None:
    rule = parse_rule("s", {"id": "off", "kind": "offline", "timeout": "5m"})
    seen = at(0)
    # last_seen is stored to the second: silent once timeout + 1 s has passed, never before
    st, d = evaluate_offline(rule, {}, last_seen=seen, online=True, now=at(300.999), device="d")
    assert d == []
    st, d = evaluate_offline(rule, st, last_seen=seen, online=True, now=at(301), device="d")
    assert actions(d) == ["raise"] and "no data" in d[0].message
    st, d = evaluate_offline(rule, st, last_seen=at(302), online=True, now=at(303), device="d")
    assert actions(d) == ["clear"]
    st, d = evaluate_offline(rule, st, last_seen=at(302), online=False, now=at(303), device="d")
    assert actions(d) == ["raise"] and "Last Will" in d[0].message


def test_per_device_override_and_bad_definitions() -> None:
    mine = VIB.for_device({"vib": {"threshold": 9, "clear": 8}})
    _, d = feed(mine, {}, (0, 8.5))
    assert d == []
    for bad in ({"id": "a", "metric": "m"},  # no threshold
                {"id": "a", "kind": "offline", "metric": "m"},
                {"id": "a", "metric": "m", "threshold": 1, "for": "soon"},
                {"id": "a", "metric": "m", "threshold": 1, "severity": "urgent"},
                {"id": "a", "kind": "rate", "metric": "m", "threshold": 1}):
        with pytest.raises(RuleError):
            parse_rule("s", bad)
