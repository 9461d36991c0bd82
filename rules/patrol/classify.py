"""Classify a route run from its planned visits, the scans matched to them and `now`.

Pure: nothing here reads a clock or a database. The engine loads a run, calls `assess`,
and writes back the visit classifications, the run status and the gaps that should exist.

Edges (all inclusive on the on-time side): a scan at exactly window start or window end is
on time; one millisecond earlier is early, later is late. A window counts as closed `settle`
after its end, so a scan taken at the last moment and still in flight is not reported missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

EARLY, ON_TIME, LATE, MISSED, PENDING, OUT_OF_ORDER = (
    "early", "on_time", "late", "missed", "pending", "out_of_order")
SCHEDULED, IN_PROGRESS, COMPLETE, INCOMPLETE, RUN_MISSED = (
    "scheduled", "in_progress", "complete", "incomplete", "missed")
GAP_MISSED_CHECKPOINT = "missed_checkpoint"
GAP_OVERDUE_INSPECTION = "overdue_inspection"
GAP_MISSED_RUN = "missed_run"
GAP_LONE_WORKER = "lone_worker"
GAP_KINDS = (GAP_MISSED_CHECKPOINT, GAP_OVERDUE_INSPECTION, GAP_MISSED_RUN, GAP_LONE_WORKER)


@dataclass(frozen=True)
class Visit:
    """One expected checkpoint visit of a run, with the time of the scan matched to it."""

    seq: int
    checkpoint: str
    due: datetime
    window_start: datetime
    window_end: datetime
    # scans from match_from to match_until may be matched to this visit (early/late)
    match_from: datetime
    match_until: datetime
    equipment: bool = False
    scan_time: datetime | None = None


@dataclass(frozen=True)
class RunPlan:
    """A run's fixed facts: when it starts, by when it must have started, its route's rules."""

    planned_start: datetime
    start_deadline: datetime
    ordered: bool = True
    min_duration: timedelta = timedelta(0)
    lone_worker: timedelta | None = None


@dataclass(frozen=True)
class VisitResult:
    """A visit's timing (early/on_time/late/missed/pending) and its overall status."""

    seq: int
    timing: str
    status: str  # the timing, or out_of_order when scanned after a later step


@dataclass(frozen=True)
class GapSpec:
    """A gap that should exist: `resolution` None means open, 'late' means resolved late."""

    kind: str
    seq: int | None
    checkpoint: str | None
    window_start: datetime
    window_end: datetime
    resolution: str | None = None


@dataclass(frozen=True)
class Assessment:
    """What a run looks like at `now`."""

    visits: tuple[VisitResult, ...]
    status: str
    flags: tuple[str, ...]
    started_at: datetime | None
    finished_at: datetime | None
    gaps: tuple[GapSpec, ...]
    next_check_at: datetime | None
    final: bool


def timing(scan_time: datetime, window_start: datetime, window_end: datetime) -> str:
    """early / on_time / late for a scan against a window (both ends on time)."""
    if scan_time < window_start:
        return EARLY
    if scan_time > window_end:
        return LATE
    return ON_TIME


def _out_of_order(visits: list[Visit]) -> set[int]:
    """Seqs scanned before a step that comes earlier in the route was scanned."""
    latest: datetime | None = None
    found = set()
    for v in sorted(visits, key=lambda v: v.seq):
        if v.scan_time is None:
            continue
        if latest is not None and v.scan_time < latest:
            found.add(v.seq)
        else:
            latest = v.scan_time
    return found


def _lone_worker_gaps(plan: RunPlan, visits: list[Visit], scans: list[datetime],
                      now: datetime, settle: timedelta, events: list[datetime]
                      ) -> list[GapSpec]:
    if plan.lone_worker is None or not scans:
        return []
    active_until = max(v.window_end for v in visits)
    all_done = all(v.scan_time is not None for v in visits)
    out = []
    for i, t in enumerate(scans):
        deadline = t + plan.lone_worker
        if deadline > active_until:
            continue
        nxt = scans[i + 1] if i + 1 < len(scans) else None
        if nxt is not None:
            if nxt > deadline:
                out.append(GapSpec(GAP_LONE_WORKER, None, None, t, deadline))
        elif not all_done:
            if now >= deadline + settle:
                out.append(GapSpec(GAP_LONE_WORKER, None, None, t, deadline))
            else:
                events.append(deadline + settle)
    return out


def assess(plan: RunPlan, visits: list[Visit], now: datetime,
           *, settle: timedelta = timedelta(seconds=2)) -> Assessment:
    """Classify every visit, the run, and list the gaps that should exist at `now`."""
    events: list[datetime] = []
    ooo = _out_of_order(visits) if plan.ordered else set()
    results = []
    for v in sorted(visits, key=lambda v: v.seq):
        if v.scan_time is not None:
            t = timing(v.scan_time, v.window_start, v.window_end)
            results.append(VisitResult(v.seq, t, OUT_OF_ORDER if v.seq in ooo else t))
        elif now >= v.window_end + settle:
            results.append(VisitResult(v.seq, MISSED, MISSED))
        else:
            results.append(VisitResult(v.seq, PENDING, PENDING))
            events.append(v.window_end + settle)
    scans = sorted(v.scan_time for v in visits if v.scan_time is not None)
    close_at = max(v.match_until for v in visits) + settle
    all_done = bool(visits) and len(scans) == len(visits)
    final = all_done or now >= close_at
    if not final:
        events.append(close_at)

    gaps: list[GapSpec] = []
    started_on_time = bool(scans) and scans[0] <= plan.start_deadline
    if not started_on_time:
        if now >= plan.start_deadline + settle:
            gaps.append(GapSpec(GAP_MISSED_RUN, None, None, plan.planned_start,
                                plan.start_deadline, "late" if scans else None))
        else:
            events.append(plan.start_deadline + settle)
    if scans:  # a run never started is one missed_run gap, not one gap per checkpoint
        for v in visits:
            if now < v.window_end + settle:
                if v.scan_time is None or v.scan_time > v.window_end:
                    events.append(v.window_end + settle)
                continue
            kind = GAP_OVERDUE_INSPECTION if v.equipment else GAP_MISSED_CHECKPOINT
            if v.scan_time is None:
                gaps.append(GapSpec(kind, v.seq, v.checkpoint, v.window_start, v.window_end))
            elif v.scan_time > v.window_end:
                gaps.append(GapSpec(kind, v.seq, v.checkpoint, v.window_start, v.window_end,
                                    "late"))
    gaps.extend(_lone_worker_gaps(plan, visits, scans, now, settle, events))

    if final:
        status = COMPLETE if all_done else (INCOMPLETE if scans else RUN_MISSED)
    else:
        status = IN_PROGRESS if scans else SCHEDULED
    flags = []
    if ooo:
        flags.append("out_of_order")
    if scans and final and scans[-1] - scans[0] < plan.min_duration:
        flags.append("too_short")
    if scans and not started_on_time:
        flags.append("late_start")
    future = [e for e in events if e > now]
    return Assessment(
        visits=tuple(results), status=status, flags=tuple(flags),
        started_at=scans[0] if scans else None,
        finished_at=scans[-1] if scans and final else None,
        gaps=tuple(gaps), next_check_at=min(future) if future else None, final=final,
    )
