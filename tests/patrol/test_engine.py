"""The patrol engine against a real database, driven by a fake clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from rules.patrol import engine
from tests.patrol.helpers import OPTIONS, T0, gaps, run_row, scan, tick, value, visits

M = timedelta(minutes=1)
S = timedelta(seconds=1)


def test_missed_checkpoint_raised_by_the_clock_within_5s(conn: psycopg.Connection[Any],
                                                          load: Callable[..., None]) -> None:
    load()
    tick(conn, T0 - 30 * M)
    scan(conn, "TAG-A", T0 + 30 * S)
    tick(conn, T0 + M)
    window_end = T0 + 15 * M   # b: due 14:10 ± 5m
    now = window_end - 10 * S
    while not gaps(conn, kind="missed_checkpoint"):  # no message arrives: only the clock
        now += timedelta(milliseconds=500)
        tick(conn, now)
        assert now < window_end + 10 * S
    (gap,) = gaps(conn)
    assert gap["detected_at"] - window_end <= 5 * S
    assert (gap["checkpoint_id"], gap["guard_id"], gap["route_id"], gap["status"]) == (
        "b", "g1", "r", "open")
    assert (gap["window_start"], gap["window_end"]) == (T0 + 5 * M, window_end)
    run = run_row(conn, T0)
    assert [v["status"] for v in visits(conn, run["id"])] == ["on_time", "missed", "pending"]


def test_late_scan_resolves_the_gap_as_late_keeping_history(conn: psycopg.Connection[Any],
                                                            load: Callable[..., None]) -> None:
    load()
    tick(conn, T0)
    scan(conn, "TAG-A", T0)
    tick(conn, T0 + 16 * M)
    (gap,) = gaps(conn)
    assert gap["status"] == "open"
    scan(conn, "TAG-B", T0 + 17 * M)
    tick(conn, T0 + 17 * M + S)
    (after,) = gaps(conn)
    assert (after["id"], after["detected_at"]) == (gap["id"], gap["detected_at"])
    assert (after["status"], after["resolution"], after["resolved_at"]) == (
        "resolved", "late", T0 + 17 * M + S)
    run = run_row(conn, T0)
    assert [v["timing"] for v in visits(conn, run["id"])] == ["on_time", "late", "pending"]


def test_run_never_started_raises_one_missed_run_gap(conn: psycopg.Connection[Any],
                                                     load: Callable[..., None]) -> None:
    load()
    tick(conn, T0 + 5 * M + S)
    assert gaps(conn) == []
    tick(conn, T0 + 5 * M + 2 * S)
    (gap,) = gaps(conn)
    assert (gap["kind"], gap["seq"]) == ("missed_run", None)
    tick(conn, T0 + 3 * 60 * M)
    assert len(gaps(conn, planned_start=T0)) == 1
    assert run_row(conn, T0)["status"] == "missed"


def test_restart_between_window_close_and_gap_gives_one_gap(database: str,
                                                            conn: psycopg.Connection[Any],
                                                            load: Callable[..., None]) -> None:
    load()
    tick(conn, T0)
    scan(conn, "TAG-A", T0)
    tick(conn, T0 + 15 * M + S)          # b's window closed, settle not over: no gap yet
    assert gaps(conn) == []
    # a worker raises the gap and dies before committing
    with psycopg.connect(database, row_factory=dict_row) as crashed:
        engine.check_due(crashed, T0 + 15 * M + 3 * S, options=OPTIONS)
        assert value(crashed, "SELECT count(*) AS n FROM inspection_gaps") == 1
        crashed.rollback()
    # a fresh process (new connection, no memory) picks it up, then ticks again
    with psycopg.connect(database, row_factory=dict_row) as fresh:
        tick(fresh, T0 + 15 * M + 4 * S)
        tick(fresh, T0 + 15 * M + 5 * S)
        engine.check_run(fresh, run_row(fresh, T0)["id"], T0 + 15 * M + 6 * S)
        fresh.commit()
    (gap,) = gaps(conn)
    assert gap["detected_at"] == T0 + 15 * M + 4 * S


def test_two_workers_raise_each_gap_once(database: str, conn: psycopg.Connection[Any],
                                         load: Callable[..., None]) -> None:
    load(schedules=[{"id": "s", "route": "r", "guard": "g1", "kind": "every", "every": "30m",
                     "window": {"start": "12:00", "end": "18:00"},
                     "effective_from": "2026-11-23"}])
    tick(conn, T0 - 3 * 60 * M)
    times = [T0 - 2 * 60 * M + i * 20 * S for i in range(6 * 180)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with psycopg.connect(database, row_factory=dict_row) as c:
                barrier.wait()
                for now in times:
                    # without the scheduler's advisory lock: only the database keeps them apart
                    engine.materialize(c, now, options=OPTIONS)
                    c.commit()
                    engine.check_due(c, now, options=OPTIONS)
                    c.commit()
                    for run in c.execute("SELECT id FROM patrol_runs WHERE planned_start <= %s"
                                         " ORDER BY id DESC LIMIT 2", (now,)).fetchall():
                        engine.check_run(c, run["id"], now, options=OPTIONS)
                        c.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    runs = value(conn, "SELECT count(*) AS n FROM patrol_runs WHERE planned_start < %s",
                        (times[-1] - 30 * M,))
    assert runs == 11   # 12:00 ... 17:00 every 30 minutes
    rows = gaps(conn)
    assert len(rows) == value(conn, "SELECT count(*) AS n FROM patrol_runs"
                                     " WHERE start_deadline + interval '2 s' <= %s",
                                     (times[-1],))
    assert all(g["kind"] == "missed_run" for g in rows)
    assert len({g["run_id"] for g in rows}) == len(rows)


def test_offline_batch_an_hour_late_is_matched_to_its_run(conn: psycopg.Connection[Any],
                                                          load: Callable[..., None]) -> None:
    load(schedules=[{"id": "s", "route": "r", "guard": "g1", "kind": "every", "every": "1h",
                     "window": {"start": "10:00", "end": "18:00"},
                     "effective_from": "2026-11-23"}])
    for i in range(0, 70 * 60, 30):
        tick(conn, T0 + i * S)
    (missed,) = gaps(conn, planned_start=T0)
    assert missed["kind"] == "missed_run" and missed["status"] == "open"
    arrived = T0 + 70 * M
    ids = [scan(conn, tag, T0 + at, received=arrived) for tag, at in
           (("TAG-A", 10 * S), ("TAG-B", 10 * M + 20 * S), ("TAG-C", 19 * M))]
    tick(conn, arrived + S)
    run = run_row(conn, T0)
    assert run["status"] == "complete"
    assert [v["scan_id"] for v in visits(conn, run["id"])] == ids
    assert [v["status"] for v in visits(conn, run["id"])] == ["on_time"] * 3
    assert visits(conn, run_row(conn, T0 + 60 * M)["id"])[0]["scan_id"] is None
    (after,) = gaps(conn, planned_start=T0)
    assert (after["status"], after["resolution"]) == ("resolved", "synced")


def test_repeated_scans_are_flagged_and_counted_once(conn: psycopg.Connection[Any],
                                                     load: Callable[..., None]) -> None:
    load()
    tick(conn, T0)
    first = scan(conn, "TAG-A", T0)
    again = scan(conn, "TAG-A", T0 + 40 * S)
    other_guard = scan(conn, "TAG-A", T0 + 50 * S, guard="g2")
    tick(conn, T0 + M)
    checks = {r["scan_id"]: r for r in conn.execute("SELECT * FROM scan_checks").fetchall()}
    assert checks[first]["disposition"] == "matched"
    assert (checks[again]["disposition"], checks[again]["suspicious"]) == ("repeat", True)
    assert checks[other_guard]["disposition"] == "unscheduled"   # g2 has no run here
    run = run_row(conn, T0)
    assert [v["scan_id"] for v in visits(conn, run["id"])] == [first, None, None]


def test_unknown_tag_is_kept_and_reported(conn: psycopg.Connection[Any],
                                         load: Callable[..., None]) -> None:
    load()
    sid = scan(conn, "NFC-NOBODY-KNOWS", T0)
    tick(conn, T0 + S)
    kept = conn.execute("SELECT tag, checkpoint_id FROM scans WHERE scan_id = %s",
                        (sid,)).fetchone()
    assert kept == {"tag": "NFC-NOBODY-KNOWS", "checkpoint_id": None}
    check = conn.execute("SELECT disposition FROM scan_checks WHERE scan_id = %s",
                         (sid,)).fetchone()
    assert check == {"disposition": "unknown_tag"}
    assert value(conn, "SELECT count(*) AS n FROM ingest_events") == 0


def test_abnormal_equipment_scan_files_a_finding(conn: psycopg.Connection[Any],
                                                 load: Callable[..., None]) -> None:
    load()
    ok = scan(conn, "QR-E1", T0, readings={"pressure": 0.45, "no_leaks": True})
    low = scan(conn, "QR-E1", T0 + 10 * M, readings={"pressure": 0.2, "no_leaks": True})
    flagged = scan(conn, "QR-E1", T0 + 20 * M, result="abnormal", readings={"no_leaks": False})
    tick(conn, T0 + 21 * M)
    rows = {r["scan_id"]: r for r in conn.execute(
        "SELECT * FROM inspection_findings").fetchall()}
    assert ok not in rows
    assert rows[low]["device_id"] == "d1"
    assert [p["reading"] for p in rows[low]["problems"]] == ["pressure"]
    assert [p["item"] for p in rows[flagged]["problems"]] == ["result", "no leaks"]
    tick(conn, T0 + 22 * M)   # processing is exactly once
    assert value(conn, "SELECT count(*) AS n FROM inspection_findings") == 2
    # each finding opened (or, as a repeat fault of the same pump, joined) a work order
    tickets = conn.execute(
        "SELECT f.id AS finding, w.id, w.device_id, w.source, w.severity"
        " FROM inspection_findings f JOIN work_orders w ON w.id = f.work_order_id"
        " ORDER BY f.id").fetchall()
    assert len(tickets) == 2
    assert {(t["device_id"], t["source"], t["severity"]) for t in tickets} == {
        ("d1", "inspection", "major")}
    refs = {r["source_ref"] for r in conn.execute(
        "SELECT source_ref FROM work_order_refs WHERE source = 'inspection'").fetchall()}
    assert refs == {f"finding:{t['finding']}" for t in tickets}


def test_catch_up_checks_backfilled_history_like_live_data(database: str,
                                                          conn: psycopg.Connection[Any],
                                                          load: Callable[..., None]) -> None:
    day = timedelta(days=1)
    schedule = [{"id": "s", "route": "r", "guard": "g1", "kind": "daily", "at": ["14:00"],
                 "effective_from": "2026-11-20"}]
    history = [("TAG-A", 20 * S), ("TAG-B", 16 * M), ("TAG-A", 60 * S)]  # b late, c missed,
    # and a repeat of a

    def outcome(c: psycopg.Connection[Any], start: datetime) -> list[tuple[object, ...]]:
        return sorted((g["kind"], g["seq"], g["window_start"] - start, g["status"],
                       g["resolution"]) for g in gaps(c, planned_start=start))

    # live: the day the scans happen, with the clock ticking through it
    load(now=T0 - 3 * day, schedules=schedule)
    start = T0 - 3 * day
    tick(conn, start - M)
    for tag, at in history:
        scan(conn, tag, start + at)
        tick(conn, start + at + S)
    for i in range(0, 60 * 60, 20):
        tick(conn, start + i * S)
    live = outcome(conn, start)
    assert live == [("missed_checkpoint", 2, 5 * M, "resolved", "late"),
                    ("missed_checkpoint", 3, 15 * M, "open", None)]
    # backfill: same scans for a later past day stored first; the worker was down since
    later = T0 - day
    for tag, at in history:
        scan(conn, tag, later + at)
    tick(conn, T0 + M)
    assert outcome(conn, later) == live
    # the day in between had no scans at all: one missed run
    assert [g[0] for g in outcome(conn, T0 - 2 * day)] == ["missed_run"]


def test_scans_before_their_schedule_existed_are_matched_when_it_is_planned(
        conn: psycopg.Connection[Any], load: Callable[..., None]) -> None:
    load(schedules=[])
    sid = scan(conn, "TAG-A", T0 + 30 * S)
    tick(conn, T0 + M)
    assert value(conn, "SELECT disposition FROM scan_checks") == "unscheduled"
    load(now=T0 + 2 * M)   # the schedule arrives (daily 14:00 from today)
    tick(conn, T0 + 2 * M)
    assert value(conn, "SELECT disposition FROM scan_checks") == "matched"
    assert visits(conn, run_row(conn, T0)["id"])[0]["scan_id"] == sid


def test_runs_on_a_dst_day_are_planned_at_the_right_instants(
        conn: psycopg.Connection[Any], load: Callable[..., None]) -> None:
    # New York falls back on 2026-11-01: 01:00-02:00 happens twice
    day = datetime(2026, 11, 1, tzinfo=UTC)
    load(now=day, tz="America/New_York",
         schedules=[{"id": "s", "route": "r", "guard": "g1", "kind": "every", "every": "1h",
                     "window": {"start": "00:00", "end": "04:00"},
                     "effective_from": "2026-11-01"}])
    tick(conn, day)
    starts = [r["planned_start"].astimezone(UTC).hour for r in conn.execute(
        "SELECT planned_start FROM patrol_runs WHERE planned_start < %s ORDER BY 1",
        (day + timedelta(hours=12),)).fetchall()]
    assert starts == [4, 5, 7, 8]   # 00:00 EDT, 01:00 EDT, 02:00 EST, 03:00 EST
    # at 06:00 UTC the two runs before it are past their start deadline, the next is not
    tick(conn, day + timedelta(hours=6))
    assert {g["planned_start"].astimezone(UTC).hour for g in gaps(conn)} == {4, 5}
