"""The nearest on-duty guard, without I/O: given distances, zone adjacency, nobody on duty."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rules.verification import Guard, SiteMap, choose
from rules.verification_config import VerificationConfigError, parse_spec

T = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
ZONES = {"door": "pump", "gate": "perimeter", "ramp": "carpark", "lobby": "tower",
         "roof": "roof", "pump-check": "pump", "island": None}
ADJACENT = [("perimeter", "carpark"), ("carpark", "pump"), ("perimeter", "tower"),
            ("tower", "roof")]


def site(distances: list[tuple[str, str, float]] | None = None) -> SiteMap:
    return SiteMap(distances=distances or [], zone_of=ZONES, adjacent_zones=ADJACENT,
                   zone_step=100)


def test_the_shortest_path_over_given_distances_wins() -> None:
    # gate -> ramp -> door is 80 + 60 = 140 m; the lobby is 50 m from the door directly but
    # the guard at the roof is 30 m from the lobby: 80 m in all.
    m = site([("gate", "ramp", 80), ("ramp", "door", 60), ("lobby", "door", 50),
              ("roof", "lobby", 30)])
    guards = [Guard("g-gate", "gate", T), Guard("g-roof", "roof", T - timedelta(minutes=5))]
    choice = choose(guards, "door", m)
    assert choice is not None
    assert (choice.guard.id, choice.distance, choice.basis) == ("g-roof", 80, "distances")
    # walk the roof guard further away: 30 -> 100 makes the gate guard nearer
    m = site([("gate", "ramp", 80), ("ramp", "door", 60), ("lobby", "door", 50),
              ("roof", "lobby", 100)])
    choice = choose(guards, "door", m)
    assert choice is not None and (choice.guard.id, choice.distance) == ("g-gate", 140)


def test_a_guard_at_the_checkpoint_itself_is_nearest() -> None:
    guards = [Guard("g-far", "gate", T), Guard("g-here", "door", T - timedelta(hours=1))]
    choice = choose(guards, "door", site())
    assert choice is not None and (choice.guard.id, choice.distance) == ("g-here", 0)


def test_zone_adjacency_is_the_fallback() -> None:
    # no distances at all: door is in zone pump; carpark is next to it (1 hop), perimeter
    # two hops, the roof three (via tower and perimeter); same zone counts half a step
    guards = [Guard("g-gate", "gate", T), Guard("g-ramp", "ramp", T - timedelta(minutes=30)),
              Guard("g-roof", "roof", T)]
    choice = choose(guards, "door", site())
    assert choice is not None
    assert (choice.guard.id, choice.distance, choice.basis) == ("g-ramp", 150, "zones")
    same_zone = choose([*guards, Guard("g-pump", "pump-check", T)], "door", site())
    assert same_zone is not None and (same_zone.guard.id, same_zone.distance) == ("g-pump", 50)


def test_given_distances_and_zones_are_compared_in_metres() -> None:
    # the gate guard is 400 m away by the given path; the ramp guard has no path, but its zone
    # is next to the pump room's: 150 m by the estimate, so it goes
    m = site([("gate", "door", 400)])
    choice = choose([Guard("g-gate", "gate", T), Guard("g-ramp", "ramp", T)], "door", m)
    assert choice is not None and (choice.guard.id, choice.basis) == ("g-ramp", "zones")


def test_unknown_positions_come_last_and_ties_go_to_the_latest_scan() -> None:
    nowhere = Guard("a-nowhere")                          # on a run, has not scanned yet
    island = Guard("b-island", "island", T)               # a checkpoint in no zone
    far = Guard("z-gate", "gate", T - timedelta(hours=2))
    choice = choose([nowhere, island, far], "door", site())
    assert choice is not None and choice.guard.id == "z-gate"
    only_unknown = choose([island, nowhere], "door", site())
    assert only_unknown is not None
    assert (only_unknown.guard.id, only_unknown.distance, only_unknown.basis) == (
        "b-island", None, "unknown")  # scanned (somewhere) beats never scanned
    tie = choose([Guard("g1", "gate", T - timedelta(minutes=9)),
                  Guard("g2", "gate", T - timedelta(minutes=1))], "door", site())
    assert tie is not None and tie.guard.id == "g2"


def test_nobody_on_duty_sends_nobody() -> None:
    assert choose([], "door", site()) is None


def test_the_section_is_validated_with_clear_errors() -> None:
    spec = parse_spec({"rules": ["door-forced", {"rule": "flood", "within": "5m"}],
                       "within": "10m", "distances": [["a", "b", 40]]})
    assert spec.deadline(spec.rules[1]) == timedelta(minutes=5)
    assert spec.deadline(spec.rules[0]) == timedelta(minutes=10)
    assert spec.rule("door-forced") is not None and spec.rule("other") is None
    for bad, words in [
        ({"rules": ["x", "x"]}, "appears twice"),
        ({"distances": [["a", "a", 3]]}, "to itself"),
        ({"distances": [["a", "b", 3], ["b", "a", 4]]}, "given twice"),
        ({"distances": [["a", "b", -1]]}, "distances[0][2]"),
        ({"within": "0s"}, "more than 0"),
        ({"escalate": {"to": []}}, "escalate.to"),
        ({"rules": [{"rule": "x", "where": "y"}]}, "rules[0].where"),
    ]:
        with pytest.raises(VerificationConfigError, match=words.replace("[", r"\[")):
            parse_spec(bad)
