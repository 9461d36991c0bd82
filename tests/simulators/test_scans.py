"""Guards in the stream: simulators.guards plans published on the scans topics, in time order."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from simulators.devices import MODELS
from simulators.fleet import fleet_from_config, load_config
from simulators.guards import Rates, plan_scans
from simulators.run import Options, build_plan, parse_rates
from simulators.stream import Plan, Publish, events, gauge_reader, scans_as_events

CONFIG = load_config()
FLEET = tuple(fleet_from_config(CONFIG, known_types=set(MODELS)))
START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def stream_plan(days: float, rates: Rates) -> Plan:
    return Plan(devices=FLEET[:1], start=START.timestamp(),
                end=(START + timedelta(days=days)).timestamp(), interval=3600, seed=4,
                live=False, sites=(CONFIG,), guard_rates=rates)


def scan_stream(days: float, rates: Rates) -> list[Publish]:
    plan = stream_plan(days, rates)
    return [e for e in events(plan) if isinstance(e, Publish) and e.kind == "scan"]


def test_scans_of_several_days_match_the_guard_plan_in_time_order() -> None:
    rates = Rates(offline_batch=0.3, repeated=0.1)
    got = scan_stream(3, rates)
    assert [e.time for e in got] == sorted(e.time for e in got)
    end = START + timedelta(days=3)
    # the gauges linked to sensors (`calibration:`) read the simulated devices
    whole = plan_scans(CONFIG, start=START, end=end, seed=4, rates=rates,
                       gauge=gauge_reader(stream_plan(3, rates), "riverside"))
    want = [e for e in scans_as_events("riverside", whole) if e.time < end.timestamp()]
    # planned a day at a time, published as one plan would be
    assert Counter((e.topic, e.payload) for e in got) == Counter((e.topic, e.payload)
                                                                 for e in want)
    guards = {e.topic.split("/")[4] for e in got}
    assert guards == {"g-wang", "g-li", "g-zhang", "g-chen"}
    assert all(e.topic == f"caretaker/v1/riverside/guards/{e.topic.split('/')[4]}/scans"
               for e in got)


def test_offline_batches_are_arrays_sent_with_their_last_scan() -> None:
    got = scan_stream(2, Rates(offline_batch=0.5))
    arrays = [e for e in got if e.payload.startswith(b"[")]
    singles = [e for e in got if e.payload.startswith(b"{")]
    assert arrays and singles
    for e in arrays:
        items = json.loads(e.payload)
        assert len(items) >= 1
        assert e.time * 1000 == pytest.approx(max(i["ts"] for i in items), abs=1)
        assert all(i["ts"] <= e.time * 1000 + 1 for i in items)
    for e in singles:
        body = json.loads(e.payload)
        assert body["ts"] == pytest.approx(e.time * 1000, abs=1)
        assert set(body) >= {"scan_id", "tag", "ts", "result"}
    scan_ids = [i["scan_id"] for e in arrays for i in json.loads(e.payload)]
    scan_ids += [json.loads(e.payload)["scan_id"] for e in singles]
    assert len(scan_ids) == len(set(scan_ids))


def test_guard_options() -> None:
    assert parse_rates("late=0.1, missed=0.05") == {"late": 0.1, "missed": 0.05}
    for bad in ("late", "late=2", "late=x"):
        with pytest.raises(ValueError):
            parse_rates(bad)
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    plan, _ = build_plan(Options(backfill=3600, guard_rates={"late": 0.5}), now=now)
    assert plan.sites and plan.guard_rates == Rates(late=0.5)
    with pytest.raises(ValueError, match="guard-rates"):
        build_plan(Options(backfill=3600, guard_rates={"sleepy": 0.5}), now=now)
    plan, _ = build_plan(Options(backfill=3600, guards=False), now=now)
    assert plan.sites == ()
    plan, _ = build_plan(Options(devices=20, backfill=3600), now=now)
    assert plan.sites == ()  # a generated fleet has no guards
