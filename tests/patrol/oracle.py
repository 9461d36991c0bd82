"""The gaps a guard plan must produce, worked out from the plan alone (not from the engine).

Rules (DESIGN "Patrol and inspection", rules/patrol/classify.py docstrings): a run with no
scan is one missed_run gap; a run whose first scan came after its start deadline has a
missed_run gap resolved late; each step without a scan is an open missed_checkpoint (or
overdue_inspection at equipment) gap, each step scanned after its window a gap resolved
late; a lone-worker silence is an open gap. A run synced offline after its start deadline
passed got its missed_run gap while nothing had arrived: resolved as synced.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from simulators.guards import Plan

SETTLE = timedelta(seconds=2)
Gap = tuple[str, datetime, str, str | None, datetime, str, str | None]


def expected_gaps(plan: Plan, *, live: bool) -> set[Gap]:
    """(schedule, run start, kind, checkpoint, window start, status, resolution) per gap.

    `live`: the checker ran while the scans arrived (offline batches arrive late); otherwise
    every scan was stored before the runs were checked (a backfill).
    """
    out: set[Gap] = set()
    for run in plan.runs:
        key = (run.schedule_id, run.start)
        times = sorted(s.scan_time for s in run.steps if s.scan_time is not None)
        if not times:
            out.add((*key, "missed_run", None, run.start, "open", None))
            continue
        if times[0] > run.start_deadline:
            out.add((*key, "missed_run", None, run.start, "resolved", "late"))
        elif live and run.offline and run.synced_at and (
                run.synced_at > run.start_deadline + SETTLE):
            out.add((*key, "missed_run", None, run.start, "resolved", "synced"))
        for step in run.steps:
            kind = "overdue_inspection" if step.equipment else "missed_checkpoint"
            if step.scan_time is None:
                out.add((*key, kind, step.checkpoint, step.window_start, "open", None))
            elif step.scan_time > step.window_end:
                out.add((*key, kind, step.checkpoint, step.window_start, "resolved", "late"))
        if run.lone_worker is not None:
            active_until = max(s.window_end for s in run.steps)
            complete = all(s.scan_time is not None for s in run.steps)
            for i, t in enumerate(times):
                deadline = t + run.lone_worker
                if deadline > active_until:
                    continue
                nxt = times[i + 1] if i + 1 < len(times) else None
                if (nxt is not None and nxt > deadline) or (nxt is None and not complete):
                    out.add((*key, "lone_worker", None, t, "open", None))
    return out
