"""Run classification at its edges: early/on_time/late/missed, order, duration, gaps."""

from datetime import UTC, datetime, timedelta

from rules.patrol import classify as c
from rules.patrol.model import route_from_dict

S = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)
SETTLE = timedelta(seconds=2)
M = timedelta(minutes=1)


def run(scans: dict[int, datetime], *, ordered: bool = True, min_duration: str = "0m",
        lone_worker: str | None = None, equipment: bool = False,
        ) -> tuple[c.RunPlan, list[c.Visit]]:
    route = route_from_dict({"id": "r", "ordered": ordered, "min_duration": min_duration,
                             "lone_worker": lone_worker, "grace": "30m", "steps": [
                                 {"checkpoint": "a", "offset": "0m", "tolerance": "5m"},
                                 {"checkpoint": "b", "offset": "10m", "tolerance": "5m"},
                                 {"checkpoint": "c", "offset": "20m", "tolerance": "5m"}]})
    visits = [c.Visit(seq=i + 1, checkpoint=step.checkpoint, due=S + due,
                      window_start=S + ws, window_end=S + we, match_from=S + ws - route.grace,
                      match_until=S + we + route.grace, equipment=equipment,
                      scan_time=scans.get(i + 1))
              for i, (step, (due, ws, we)) in enumerate(zip(route.steps, route.windows(),
                                                            strict=True))]
    plan = c.RunPlan(S, S + route.default_start_tolerance(), ordered=ordered,
                     min_duration=route.min_duration, lone_worker=route.lone_worker)
    return plan, visits


def timings(a: c.Assessment) -> list[str]:
    return [v.timing for v in a.visits]


def test_tolerance_edges_are_on_time() -> None:
    # b is due at S+10m ± 5m
    cases = [(S + 5 * M - MS, "early"), (S + 5 * M, "on_time"), (S + 15 * M, "on_time"),
             (S + 15 * M + MS, "late")]
    for when, want in cases:
        plan, visits = run({1: S, 2: when, 3: S + 20 * M})
        a = c.assess(plan, visits, S + 2 * 60 * M, settle=SETTLE)
        assert timings(a) == ["on_time", want, "on_time"], when


def test_missed_exactly_when_window_closes_plus_settle() -> None:
    plan, visits = run({1: S})
    close_b = S + 15 * M + SETTLE
    before = c.assess(plan, visits, close_b - MS, settle=SETTLE)
    assert timings(before) == ["on_time", "pending", "pending"]
    assert before.gaps == ()
    assert before.next_check_at == close_b
    at = c.assess(plan, visits, close_b, settle=SETTLE)
    assert timings(at) == ["on_time", "missed", "pending"]
    assert at.gaps == (c.GapSpec(c.GAP_MISSED_CHECKPOINT, 2, "b", S + 5 * M, S + 15 * M),)
    assert at.status == c.IN_PROGRESS and not at.final


def test_late_scan_is_a_gap_resolved_late() -> None:
    plan, visits = run({1: S, 2: S + 16 * M, 3: S + 20 * M})
    a = c.assess(plan, visits, S + 26 * M, settle=SETTLE)
    assert a.status == c.COMPLETE
    assert a.gaps == (c.GapSpec(c.GAP_MISSED_CHECKPOINT, 2, "b", S + 5 * M, S + 15 * M,
                                "late"),)


def test_equipment_visit_gap_is_an_overdue_inspection() -> None:
    plan, visits = run({1: S, 2: S + 10 * M}, equipment=True)
    a = c.assess(plan, visits, S + 26 * M, settle=SETTLE)
    assert [g.kind for g in a.gaps] == [c.GAP_OVERDUE_INSPECTION]


def test_run_never_started_is_one_missed_run_gap() -> None:
    plan, visits = run({})
    deadline = S + 5 * M
    assert c.assess(plan, visits, deadline + SETTLE - MS, settle=SETTLE).gaps == ()
    a = c.assess(plan, visits, deadline + SETTLE, settle=SETTLE)
    assert a.gaps == (c.GapSpec(c.GAP_MISSED_RUN, None, None, S, deadline),)
    end = c.assess(plan, visits, S + 2 * 60 * M, settle=SETTLE)
    assert end.status == c.RUN_MISSED and end.final
    assert [g.kind for g in end.gaps] == [c.GAP_MISSED_RUN]   # not one per checkpoint


def test_started_late_resolves_missed_run_late_and_raises_skipped_points() -> None:
    plan, visits = run({2: S + 10 * M, 3: S + 20 * M})
    a = c.assess(plan, visits, S + 60 * M, settle=SETTLE)
    assert set(a.gaps) == {c.GapSpec(c.GAP_MISSED_RUN, None, None, S, S + 5 * M, "late"),
                           c.GapSpec(c.GAP_MISSED_CHECKPOINT, 1, "a", S - 5 * M, S + 5 * M)}
    assert "late_start" in a.flags
    assert c.assess(plan, visits, S + 40 * M, settle=SETTLE).status == c.IN_PROGRESS
    final = c.assess(plan, visits, S + 2 * 60 * M, settle=SETTLE)
    assert final.status == c.INCOMPLETE and final.final


def test_out_of_order_in_ordered_route_only() -> None:
    scans = {1: S, 2: S + 14 * M, 3: S + 12 * M}
    plan, visits = run(scans)
    a = c.assess(plan, visits, S + 60 * M, settle=SETTLE)
    assert [v.status for v in a.visits] == ["on_time", "on_time", "out_of_order"]
    assert timings(a) == ["on_time", "on_time", "early"]
    assert "out_of_order" in a.flags
    plan, visits = run(scans, ordered=False)
    a = c.assess(plan, visits, S + 60 * M, settle=SETTLE)
    assert [v.status for v in a.visits] == ["on_time", "on_time", "on_time"]
    assert a.flags == ()


def test_any_order_windows_run_from_the_start_to_each_deadline() -> None:
    # any order: c (deadline 20m ± 5m) is on time from S-5m to S+25m
    plan, visits = run({3: S - 5 * M, 2: S + 1 * M, 1: S + 5 * M}, ordered=False)
    a = c.assess(plan, visits, S + 60 * M, settle=SETTLE)
    assert timings(a) == ["on_time", "on_time", "on_time"]
    assert a.status == c.COMPLETE
    plan, visits = run({1: S, 2: S + 15 * M + MS, 3: S - 5 * M - MS}, ordered=False)
    a = c.assess(plan, visits, S + 60 * M, settle=SETTLE)
    assert timings(a) == ["on_time", "late", "early"]


def test_too_short_flag() -> None:
    plan, visits = run({1: S, 2: S + 5 * M, 3: S + 19 * M}, min_duration="20m")
    assert "too_short" in c.assess(plan, visits, S + 30 * M, settle=SETTLE).flags
    plan, visits = run({1: S, 2: S + 5 * M, 3: S + 20 * M}, min_duration="20m")
    assert "too_short" not in c.assess(plan, visits, S + 30 * M, settle=SETTLE).flags


def test_lone_worker_silence_during_a_run() -> None:
    plan, visits = run({1: S}, lone_worker="12m")
    quiet = S + 12 * M + SETTLE
    assert c.assess(plan, visits, quiet - MS, settle=SETTLE).next_check_at == quiet
    a = c.assess(plan, visits, quiet, settle=SETTLE)
    assert c.GapSpec(c.GAP_LONE_WORKER, None, None, S, S + 12 * M) in a.gaps
    # a scan arriving later but taken inside the silence removes the reason for the gap
    plan, visits = run({1: S, 2: S + 11 * M}, lone_worker="12m")
    a = c.assess(plan, visits, quiet, settle=SETTLE)
    assert all(g.kind != c.GAP_LONE_WORKER for g in a.gaps)
