"""The simulated guards: deterministic plans, injected faults, and the gaps they imply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from caretaker.site_config import example_document
from rules.patrol import classify
from rules.patrol.model import route_from_dict
from simulators.guards import NONE, Rates, plan_scans
from tests.patrol.oracle import expected_gaps

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
END = START + timedelta(days=1)


def test_same_arguments_same_plan_and_seed_matters() -> None:
    doc = example_document()
    a = plan_scans(doc, start=START, end=END, seed=7, rates=Rates(missed=0.2))
    b = plan_scans(doc, start=START, end=END, seed=7, rates=Rates(missed=0.2))
    c = plan_scans(doc, start=START, end=END, seed=8, rates=Rates(missed=0.2))
    assert [s.payload for s in a] == [s.payload for s in b]
    assert [s.payload for s in a] != [s.payload for s in c]
    assert [s.time for s in a] == sorted(s.time for s in a)


def test_clean_plan_walks_every_run_on_time() -> None:
    doc = example_document()
    plan = plan_scans(doc, start=START, end=END, seed=1, rates=NONE)
    by_schedule: dict[str, int] = {}
    for run in plan.runs:
        by_schedule[run.schedule_id] = by_schedule.get(run.schedule_id, 0) + 1
    # a Sunday-noon-to-Monday-noon UTC day in Shanghai: Monday's rounds and Sunday night's
    assert by_schedule == {"night-perimeter-2h": 5, "day-patrol": 3, "gate-hourly": 12,
                           "inspection-daily": 1, "inspection-weekly": 1}
    assert plan.injected == []
    assert len(plan) == sum(len(r.steps) for r in plan.runs)
    assert expected_gaps(plan, live=True) == set()
    guards = {r.schedule_id: r.guard_id for r in plan.runs}
    assert guards["gate-hourly"] == "g-wang"   # the post's guard
    equipment = [p for p in plan if p.checkpoint == "ecp-pump-1"]
    assert equipment[0].payload["readings"] == {"outlet_pressure": 0.45, "bearing_temp": 56.0,
                                                "no_leaks": True}


def test_injected_faults_are_reported() -> None:
    doc = example_document()
    plan = plan_scans(doc, start=START, end=END, seed=3,
                      rates={"missed": 0.1, "late": 0.1, "repeated": 0.1,
                             "offline_batch": 0.2, "out_of_order": 0.3})
    kinds = {i.kind for i in plan.injected}
    assert kinds == {"missed", "late", "repeated", "offline_batch", "out_of_order"}
    missed = {(i.schedule_id, i.run_start, i.checkpoint) for i in plan.injected
              if i.kind == "missed"}
    steps = {(r.schedule_id, r.start, s.checkpoint) for r in plan.runs for s in r.steps
             if s.scan_time is None}
    assert missed == steps
    repeats = [p for p in plan if p.repeat]
    assert len(repeats) == sum(1 for i in plan.injected if i.kind == "repeated")
    batched = [p for p in plan if p.offline_batch]
    assert batched and all(p.batch for p in batched)


def test_pure_classification_agrees_with_the_plan_over_many_seeds() -> None:
    doc = example_document()
    routes = {r["id"]: route_from_dict(r) for r in doc["routes"]}
    equipment = {c["id"] for c in doc["checkpoints"] if c.get("kind") == "equipment"}
    for seed in range(40):
        plan = plan_scans(doc, start=START, end=END, seed=seed,
                          rates=Rates(missed=0.15, late=0.15, out_of_order=0.2,
                                      repeated=0.1, missed_run=0.05))
        got = set()
        for run in plan.runs:
            route = routes[run.route_id]
            visits = [classify.Visit(
                seq=s.seq, checkpoint=s.checkpoint, due=run.start + due,
                window_start=s.window_start, window_end=s.window_end,
                match_from=s.window_start - route.grace, match_until=s.window_end + route.grace,
                equipment=s.checkpoint in equipment, scan_time=s.scan_time)
                for s, (due, _, _) in zip(run.steps, route.windows(), strict=True)]
            plan_ = classify.RunPlan(run.start, run.start_deadline, ordered=route.ordered,
                                     min_duration=route.min_duration,
                                     lone_worker=route.lone_worker)
            a = classify.assess(plan_, visits, END + timedelta(days=1))
            for g in a.gaps:
                got.add((run.schedule_id, run.start, g.kind, g.checkpoint, g.window_start,
                         "open" if g.resolution is None else "resolved", g.resolution))
        assert got == expected_gaps(plan, live=False), seed
