"""The patrol engine's I/O: plan runs, take scans from the outbox, check runs on the clock.

Three steps, each one transaction on a connection with dict rows:
  * `materialize` turns schedules into runs (ahead of time, and for past windows since the
    schedule's effective_from: catch-up after downtime and backfilled history);
  * `consume_scans` takes `ingest_events` of kind 'scans' (FOR UPDATE SKIP LOCKED, deleted
    in the same transaction), records what each scan is (matched to a visit, repeat,
    unknown tag, unscheduled), files equipment findings and compares linked gauge readings
    with the sensors (rules/calibration_checks.py);
  * `check_due` looks again at every run whose next event time has come, classifies it
    (rules/patrol/classify.py) and makes the stored gaps match what should exist.
Gaps are unique per (run, kind, visit, window) in the database, so restarts and parallel
workers never duplicate them; run rows are locked before their visits are touched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from rules import calibration_checks
from rules.patrol import checklist, classify
from rules.patrol.checklist import findings as checklist_findings
from rules.patrol.model import PatrolConfigError, Route
from rules.patrol.schedule import occurrences
from rules.patrol.store import Conn, load_route, load_schedule
from rules.verification_store import take_scan
from tickets.work_orders import open_work_order, raise_severity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PatrolOptions:
    """Tunables of the engine (from Settings in the worker; defaults for tests)."""

    settle: timedelta = timedelta(seconds=2)
    repeat_window: timedelta = timedelta(minutes=5)
    horizon: timedelta = timedelta(hours=24)
    catchup: timedelta = timedelta(days=31)
    # at most this much schedule time is planned per schedule and tick (keeps ticks short)
    plan_chunk: timedelta = timedelta(days=7)
    # runs planned / checked per tick at most, so a long catch-up never holds up live gaps
    plan_batch: int = 500
    check_batch: int = 200
    event_batch: int = 200


DEFAULT = PatrolOptions()


def options_from(settings: Any) -> PatrolOptions:
    """The engine's options from Settings (CARETAKER_PATROL_*)."""
    return PatrolOptions(settle=timedelta(seconds=settings.patrol_settle_seconds),
                         repeat_window=timedelta(seconds=settings.patrol_repeat_seconds),
                         horizon=timedelta(hours=settings.patrol_horizon_hours),
                         catchup=timedelta(days=settings.patrol_catchup_days))


# --- planning -----------------------------------------------------------------------------

def _equipment_checkpoints(conn: Conn, site_id: str) -> set[str]:
    rows = conn.execute("SELECT id FROM checkpoints WHERE site_id = %s AND kind = 'equipment'",
                        (site_id,)).fetchall()
    return {r["id"] for r in rows}


def plan_run(conn: Conn, *, site_id: str, schedule_id: str, route: Route,
             guard_id: str | None, post: str | None, planned_start: datetime,
             start_tolerance: timedelta | None, equipment: set[str], settle: timedelta
             ) -> int | None:
    """Insert one run and its visits unless it exists; the new run's id, else None."""
    windows = route.windows()
    start_deadline = planned_start + (start_tolerance if start_tolerance is not None
                                      else route.default_start_tolerance())
    planned_end = planned_start + max(end for _, _, end in windows)
    first_event = min(start_deadline, planned_start + min(end for _, _, end in windows))
    row = conn.execute(
        "INSERT INTO patrol_runs (site_id, schedule_id, route_id, guard_id, post,"
        "   planned_start, start_deadline, planned_end, ordered, min_duration, lone_worker,"
        "   next_check_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (site_id, schedule_id, planned_start) DO NOTHING RETURNING id",
        (site_id, schedule_id, route.id, guard_id, post, planned_start, start_deadline,
         planned_end, route.ordered, route.min_duration, route.lone_worker,
         first_event + settle)).fetchone()
    if row is None:
        return None
    run_id = int(row["id"])
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO patrol_visits (run_id, seq, site_id, checkpoint_id, equipment, due_at,"
            "   window_start, window_end, match_from, match_until)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(run_id, i + 1, site_id, step.checkpoint, step.checkpoint in equipment,
              planned_start + due, planned_start + ws, planned_start + we,
              planned_start + ws - route.grace, planned_start + we + route.grace)
             for i, (step, (due, ws, we)) in enumerate(zip(route.steps, windows, strict=True))])
    return run_id


def materialize(conn: Conn, now: datetime, *, options: PatrolOptions = DEFAULT
                ) -> int:
    """Create the runs of every enabled schedule up to now + horizon; return how many."""
    rows = conn.execute(
        "SELECT s.site_id, s.id, s.guard_id, s.post, s.definition, s.materialized_until,"
        "   s.effective_at, r.definition AS route, st.timezone"
        " FROM schedules s JOIN routes r ON r.site_id = s.site_id AND r.id = s.route_id"
        " JOIN sites st ON st.id = s.site_id"
        " WHERE s.enabled AND (s.materialized_until IS NULL OR s.materialized_until < %s)"
        " ORDER BY s.site_id, s.id FOR UPDATE OF s SKIP LOCKED",
        (now + options.horizon / 2,)).fetchall()
    created = 0
    equipment: dict[str, set[str]] = {}
    for row in rows:
        try:
            sched = load_schedule(row["definition"])
            route = load_route(row["route"])
        except PatrolConfigError:
            log.exception("schedule %s/%s cannot be planned", row["site_id"], row["id"])
            continue
        site = row["site_id"]
        if site not in equipment:
            equipment[site] = _equipment_checkpoints(conn, site)
        # nothing before the schedule takes effect (when first loaded, or its effective_from)
        begin = max(row["materialized_until"] or row["effective_at"], row["effective_at"],
                    now - options.catchup)
        end = min(now + options.horizon, begin + options.plan_chunk)
        new_runs: list[datetime] = []
        for start in occurrences(sched, row["timezone"], begin, end):
            if created + len(new_runs) >= options.plan_batch:
                end = start   # the rest next tick
                break
            run_id = plan_run(conn, site_id=site, schedule_id=sched.id, route=route,
                              guard_id=sched.guard, post=sched.post, planned_start=start,
                              start_tolerance=sched.start_tolerance,
                              equipment=equipment[site], settle=options.settle)
            if run_id is not None:
                new_runs.append(start)
        conn.execute("UPDATE schedules SET materialized_until = %s WHERE site_id = %s"
                     " AND id = %s", (end, site, sched.id))
        if new_runs:
            created += len(new_runs)
            windows = route.windows()
            _rematch_unscheduled(
                conn, site, new_runs[0] + min(ws for _, ws, _ in windows) - route.grace,
                new_runs[-1] + max(we for _, _, we in windows) + route.grace, now, options)
    return created


def _rematch_unscheduled(conn: Conn, site_id: str, start: datetime,
                         end: datetime, now: datetime, options: PatrolOptions) -> None:
    """Scans that found no run before these runs were planned get another chance."""
    rows = conn.execute(
        "SELECT scan_id FROM scan_checks WHERE site_id = %s AND disposition = 'unscheduled'"
        " AND scan_time >= %s AND scan_time <= %s ORDER BY scan_time",
        (site_id, start, end)).fetchall()
    if not rows:
        return
    ids = [r["scan_id"] for r in rows]
    conn.execute("DELETE FROM scan_checks WHERE scan_id = ANY(%s)", (ids,))
    process_scans(conn, ids, now, options=options, findings=False)


# --- scans --------------------------------------------------------------------------------

def _scan_ids(payload: Any) -> list[UUID]:
    items = payload if isinstance(payload, list) else [payload]
    out = []
    for item in items:
        if isinstance(item, dict) and item.get("scan_id"):
            try:
                out.append(UUID(str(item["scan_id"])))
            except ValueError:
                log.warning("ingest event with a bad scan_id %r", item.get("scan_id"))
    return out


def consume_scans(conn: Conn, now: datetime, *,
                  options: PatrolOptions = DEFAULT) -> int:
    """Process a batch of 'scans' outbox events and delete them; return how many events."""
    events = conn.execute(
        "SELECT id, payload FROM ingest_events WHERE kind = 'scans' ORDER BY id"
        " LIMIT %s FOR UPDATE SKIP LOCKED", (options.event_batch,)).fetchall()
    if not events:
        return 0
    ids: list[UUID] = []
    for event in events:
        ids.extend(_scan_ids(event["payload"]))
    process_scans(conn, ids, now, options=options)
    conn.execute("DELETE FROM ingest_events WHERE id = ANY(%s)", ([e["id"] for e in events],))
    return len(events)


def _lock_run(conn: Conn, run_id: int) -> dict[str, Any] | None:
    row: dict[str, Any] | None = conn.execute(
        "SELECT * FROM patrol_runs WHERE id = %s FOR UPDATE", (run_id,)).fetchone()
    return row


def _is_repeat(conn: Conn, scan: dict[str, Any], window: timedelta) -> bool:
    row = conn.execute(
        "SELECT 1 FROM scans WHERE site_id = %(site)s AND guard_id = %(guard)s"
        " AND tag = %(tag)s AND time >= %(from)s AND time <= %(t)s"
        " AND (time < %(t)s OR scan_id < %(id)s) AND scan_id <> %(id)s LIMIT 1",
        {"site": scan["site_id"], "guard": scan["guard_id"], "tag": scan["tag"],
         "from": scan["time"] - window, "t": scan["time"], "id": scan["scan_id"]}).fetchone()
    return row is not None


def _match(conn: Conn, scan: dict[str, Any], checkpoint: str
           ) -> tuple[int, int] | None:
    """Attach the scan to the closest free visit it can belong to; (run_id, seq) or None."""
    for _ in range(3):
        cand = conn.execute(
            "SELECT v.run_id, v.seq FROM patrol_visits v JOIN patrol_runs r ON r.id = v.run_id"
            " WHERE v.site_id = %(site)s AND v.checkpoint_id = %(cp)s AND v.scan_id IS NULL"
            "   AND v.match_from <= %(t)s AND v.match_until >= %(t)s"
            "   AND (r.guard_id = %(guard)s OR (r.guard_id IS NULL AND r.post IS NOT NULL"
            "        AND r.post = (SELECT post FROM guards WHERE site_id = %(site)s"
            "                      AND id = %(guard)s)))"
            " ORDER BY GREATEST(v.window_start - %(t)s, %(t)s - v.window_end, interval '0'),"
            "   abs(extract(epoch FROM v.due_at - %(t)s)), v.due_at LIMIT 1",
            {"site": scan["site_id"], "cp": checkpoint, "t": scan["time"],
             "guard": scan["guard_id"]}).fetchone()
        if cand is None:
            return None
        _lock_run(conn, cand["run_id"])
        took = conn.execute(
            "UPDATE patrol_visits SET scan_id = %s, scan_time = %s"
            " WHERE run_id = %s AND seq = %s AND scan_id IS NULL RETURNING run_id",
            (scan["scan_id"], scan["time"], cand["run_id"], cand["seq"])).fetchone()
        if took is not None:
            return int(cand["run_id"]), int(cand["seq"])
    return None


def process_scans(conn: Conn, scan_ids: Iterable[UUID], now: datetime, *,
                  options: PatrolOptions = DEFAULT, findings: bool = True) -> int:
    """Classify stored scans (each once), match them to runs, re-check the runs touched."""
    ids = list(dict.fromkeys(scan_ids))
    if not ids:
        return 0
    scans = conn.execute(
        "SELECT s.time, s.scan_id, s.site_id, s.guard_id, s.tag, s.result, s.readings, s.note"
        " FROM scans s WHERE s.scan_id = ANY(%s)"
        " AND NOT EXISTS (SELECT 1 FROM scan_checks c WHERE c.scan_id = s.scan_id)"
        " ORDER BY s.time, s.scan_id", (ids,)).fetchall()
    checkpoints: dict[tuple[str, str], dict[str, Any] | None] = {}
    touched: set[int] = set()
    for scan in scans:
        key = (scan["site_id"], scan["tag"])
        if key not in checkpoints:
            checkpoints[key] = conn.execute(
                "SELECT id, kind, device_id, zone_id, name, checklist FROM checkpoints"
                " WHERE site_id = %s AND tag = %s", key).fetchone()
        cp = checkpoints[key]
        run_id = seq = None
        suspicious = verified = False
        if cp is None:
            disposition = "unknown_tag"
        else:
            # a repeat that finds a free visit (another run's) is a visit, not an extra one
            hit = _match(conn, scan, cp["id"])
            # the guard sent to verify an alarm here: the scan is the result (once)
            verified = findings and take_scan(conn, dict(scan), cp["id"], now)
            if hit is not None:
                disposition, (run_id, seq) = "matched", hit
                touched.add(run_id)
            elif verified:
                disposition = "verification"
            elif _is_repeat(conn, scan, options.repeat_window):
                disposition, suspicious = "repeat", True
            else:
                disposition = "unscheduled"
        conn.execute(
            "INSERT INTO scan_checks (scan_id, scan_time, site_id, guard_id, tag, checkpoint_id,"
            "   disposition, suspicious, run_id, seq, checked_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (scan_id) DO NOTHING",
            (scan["scan_id"], scan["time"], scan["site_id"], scan["guard_id"], scan["tag"],
             cp["id"] if cp else None, disposition, suspicious, run_id, seq, now))
        if findings and cp is not None and cp["kind"] == "equipment":
            _file_finding(conn, scan, cp, now)
            if disposition != "repeat":  # the same reading again is no second check
                calibration_checks.check_scan(conn, scan, cp, now)
        elif findings and scan["result"] == "abnormal" and not verified:
            _file_hazard(conn, scan, cp, now)  # (a confirmed alarm has its own work order)
    for run_id in sorted(touched):
        check_run(conn, run_id, now, options=options)
    return len(scans)


# --- findings → work orders ---------------------------------------------------------------
# A finding is filed in the transaction that checks its scan (once: unique by scan) and its
# ticket opened at once in a savepoint; the clock retries findings left without a ticket.

HAZARD_SEVERITY = "major"  # a guard's hazard report (安全隐患): respond and resolve as major


def _insert_finding(conn: Conn, scan: dict[str, Any], cp: dict[str, Any] | None, *, kind: str,
                    problems: list[dict[str, Any]], severity: str, now: datetime) -> None:
    row = conn.execute(
        "INSERT INTO inspection_findings (site_id, checkpoint_id, device_id, guard_id, scan_id,"
        "   scan_time, problems, note, created_at, kind, severity)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (scan_id) DO NOTHING RETURNING id",
        (scan["site_id"], cp["id"] if cp else None, cp["device_id"] if cp else None,
         scan["guard_id"], scan["scan_id"], scan["time"], Jsonb(problems), scan["note"], now,
         kind, severity)).fetchone()
    if row is not None:
        open_finding_work_orders(conn, now, ids=[int(row["id"])])


def _file_finding(conn: Conn, scan: dict[str, Any], cp: dict[str, Any],
                  now: datetime) -> None:
    """An equipment checkpoint: each answer out of range (or `abnormal`) is a finding."""
    problems = checklist_findings(cp["checklist"] or [], scan["readings"] or {},
                                  scan["result"])
    if problems:
        _insert_finding(conn, scan, cp, kind="equipment", problems=problems,
                        severity=checklist.worst(problems), now=now)


def _file_hazard(conn: Conn, scan: dict[str, Any], cp: dict[str, Any] | None,
                 now: datetime) -> None:
    """An abnormal scan anywhere else is a hazard (安全隐患) to rectify, the note its text."""
    reason = scan["note"] or "reported abnormal (no note)"
    problems = [{"item": "hazard", "reason": reason, "severity": HAZARD_SEVERITY,
                 **({} if cp else {"tag": scan["tag"]})}]
    _insert_finding(conn, scan, cp, kind="hazard", problems=problems,
                    severity=HAZARD_SEVERITY, now=now)


def open_finding_work_orders(conn: Conn, now: datetime, *,
                             ids: list[int] | None = None, limit: int = 50) -> int:
    """Open the work order of findings that have none yet; return how many opened."""
    rows = conn.execute(
        "SELECT f.*, c.name AS checkpoint_name, c.zone_id FROM inspection_findings f"
        " LEFT JOIN checkpoints c ON c.site_id = f.site_id AND c.id = f.checkpoint_id"
        " WHERE f.work_order_id IS NULL"
        " AND (%(ids)s::bigint[] IS NULL OR f.id = ANY(%(ids)s))"
        " ORDER BY f.id LIMIT %(limit)s FOR UPDATE OF f SKIP LOCKED",
        {"ids": ids, "limit": limit}).fetchall()
    opened = 0
    for f in rows:
        try:
            with conn.transaction():
                wo = (_open_hazard if f["kind"] == "hazard" else _open_inspection)(conn, f, now)
                conn.execute("UPDATE inspection_findings SET work_order_id = %s WHERE id = %s",
                             (wo, f["id"]))
            opened += 1
        except Exception:
            log.exception("could not open a work order for inspection finding %s", f["id"])
    return opened


def _open_inspection(conn: Conn, f: dict[str, Any], now: datetime) -> int:
    """An equipment finding's ticket: the device's, with the worst answer's severity."""
    answers = [p for p in f["problems"] if p.get("reading")] or f["problems"]
    lines = "; ".join(checklist.describe(p) for p in f["problems"])
    wo = open_work_order(
        conn, site_id=f["site_id"], device_id=f["device_id"], severity=f["severity"],
        title=f"Inspection finding at {f['checkpoint_name']}: {answers[0].get('item')}"[:200],
        description=f"{lines} (guard {f['guard_id']}, scan {f['scan_id']}"
                    + (f"; note: {f['note']}" if f["note"] else "") + ")",
        source="inspection", source_ref=f"finding:{f['id']}", now=now, category="设备",
        checkpoint_id=f["checkpoint_id"], zone_id=f["zone_id"])
    # a worse finding on the device's live ticket (a repeat) raises it
    raise_severity(conn, wo, f["severity"], now=now)
    return wo


def _open_hazard(conn: Conn, f: dict[str, Any], now: datetime) -> int:
    """A hazard's rectification ticket (整改): where it was seen and what the guard wrote."""
    where = f["checkpoint_name"] or f"unknown tag {f['problems'][0].get('tag')}"
    text = f["note"] or f["problems"][0]["reason"]
    return open_work_order(
        conn, site_id=f["site_id"], device_id=None, severity=f["severity"],
        title=f"Hazard 安全隐患 at {where}: {text}"[:200], description=text,
        source="patrol", source_ref=f"scan:{f['scan_id']}", now=now, category="整改",
        channel="app", checkpoint_id=f["checkpoint_id"], zone_id=f["zone_id"],
        actor=f"guard:{f['guard_id']}")


# --- checking runs ------------------------------------------------------------------------

def check_run(conn: Conn, run_id: int, now: datetime, *,
              options: PatrolOptions = DEFAULT) -> classify.Assessment | None:
    """Classify one run at `now` and bring its visits, status and gaps up to date."""
    run = _lock_run(conn, run_id)
    if run is None:
        return None
    rows = conn.execute("SELECT * FROM patrol_visits WHERE run_id = %s ORDER BY seq",
                        (run_id,)).fetchall()
    visits = [classify.Visit(
        seq=v["seq"], checkpoint=v["checkpoint_id"], due=v["due_at"],
        window_start=v["window_start"], window_end=v["window_end"],
        match_from=v["match_from"], match_until=v["match_until"],
        equipment=v["equipment"], scan_time=v["scan_time"]) for v in rows]
    plan = classify.RunPlan(planned_start=run["planned_start"],
                            start_deadline=run["start_deadline"], ordered=run["ordered"],
                            min_duration=run["min_duration"], lone_worker=run["lone_worker"])
    result = classify.assess(plan, visits, now, settle=options.settle)
    stored = {v["seq"]: (v["timing"], v["status"]) for v in rows}
    changed = [(r.timing, r.status, run_id, r.seq) for r in result.visits
               if stored.get(r.seq) != (r.timing, r.status)]
    if changed:
        with conn.cursor() as cur:
            cur.executemany("UPDATE patrol_visits SET timing = %s, status = %s"
                            " WHERE run_id = %s AND seq = %s", changed)
    conn.execute(
        "UPDATE patrol_runs SET status = %s, flags = %s, started_at = %s, finished_at = %s,"
        " final = %s, next_check_at = %s, checked_at = %s WHERE id = %s",
        (result.status, list(result.flags), result.started_at, result.finished_at,
         result.final, result.next_check_at, now, run_id))
    _reconcile_gaps(conn, run, result.gaps, now)
    return result


# A gap still standing (no scan came): open, or acknowledged by a supervisor; a scan that
# arrives late resolves either.
OPENISH = ("open", "acknowledged")


def _gap_key(kind: str, seq: int | None, window_start: datetime) -> tuple[str, int | None, float]:
    return kind, seq, window_start.astimezone(UTC).timestamp()


def _reconcile_gaps(conn: Conn, run: dict[str, Any],
                    wanted: Iterable[classify.GapSpec], now: datetime) -> None:
    existing = {_gap_key(g["kind"], g["seq"], g["window_start"]): g for g in conn.execute(
        "SELECT id, kind, seq, window_start, status, resolution FROM inspection_gaps"
        " WHERE run_id = %s", (run["id"],)).fetchall()}
    keep = set()
    for gap in wanted:
        key = _gap_key(gap.kind, gap.seq, gap.window_start)
        keep.add(key)
        have = existing.get(key)
        if have is None:
            conn.execute(
                "INSERT INTO inspection_gaps (site_id, route_id, schedule_id, run_id, seq,"
                "   checkpoint_id, guard_id, post, kind, window_start, window_end, detected_at,"
                "   status, resolution, resolved_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (run_id, kind, seq, window_start) DO NOTHING",
                (run["site_id"], run["route_id"], run["schedule_id"], run["id"], gap.seq,
                 gap.checkpoint, run["guard_id"], run["post"], gap.kind, gap.window_start,
                 gap.window_end, now, "open" if gap.resolution is None else "resolved",
                 gap.resolution, None if gap.resolution is None else now))
        elif have["status"] in OPENISH and gap.resolution is not None:
            conn.execute("UPDATE inspection_gaps SET status = 'resolved', resolution = %s,"
                         " resolved_at = %s WHERE id = %s", (gap.resolution, now, have["id"]))
    for key, have in existing.items():
        if key not in keep and have["status"] in OPENISH:
            conn.execute("UPDATE inspection_gaps SET status = 'resolved', resolution = 'synced',"
                         " resolved_at = %s WHERE id = %s", (now, have["id"]))


def check_due(conn: Conn, now: datetime, *, options: PatrolOptions = DEFAULT
              ) -> int:
    """Check every run whose next event time has come; return how many were checked."""
    rows = conn.execute(
        # newest first: windows that just closed before a backlog of catch-up runs
        "SELECT id FROM patrol_runs WHERE next_check_at <= %s ORDER BY next_check_at DESC"
        " LIMIT %s FOR UPDATE SKIP LOCKED", (now, options.check_batch)).fetchall()
    for row in rows:
        check_run(conn, int(row["id"]), now, options=options)
    return len(rows)


def clock_tick(conn: Conn, now: datetime, *, options: PatrolOptions = DEFAULT
               ) -> None:
    """The clock job: plan runs, check runs whose windows closed, retry pending tickets.

    Scans already stored are taken first, so a window is never judged without them.
    """
    materialize(conn, now, options=options)
    for _ in range(20):
        if not consume_scans(conn, now, options=options):
            break
    check_due(conn, now, options=options)
    open_finding_work_orders(conn, now)
    calibration_checks.open_pending(conn, now)


def patrol_jobs(settings: Any) -> list[Any]:
    """The rules worker's patrol jobs: the clock (plan + check) and the scan consumer."""
    from caretaker.scheduler import Job

    options = options_from(settings)
    every = settings.patrol_tick_ms / 1000
    return [
        Job("patrol-clock", every, lambda conn, now: clock_tick(conn, now, options=options)),
        Job("patrol-scans", every, lambda conn, now: consume_scans(conn, now, options=options),
            wakes_on=("scans",)),
    ]
