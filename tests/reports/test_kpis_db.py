"""Each KPI over records written by SQL, at its edges, on a controllable `now`."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import psycopg
import pytest

from caretaker.errors import NotFound
from reports import kpis
from stack.app import load_site
from tests.reports.test_kpis_records import (
    SITE,
    complaint,
    fault,
    follow_up,
    make_site,
    run,
    utc,
    work_order,
)

Conn = psycopg.Connection[Any]
# Berlin, Monday 2026-11-16 to Sunday 2026-11-22 (CET, UTC+1): the week is
# 2026-11-15T23:00Z to 2026-11-22T23:00Z.
MON, NEXT_MON = date(2026, 11, 16), date(2026, 11, 23)
START, END = utc(2026, 11, 15, 23), utc(2026, 11, 22, 23)
NOW = utc(2026, 11, 25, 12)


def week(conn: Conn, *, now: Any = NOW) -> dict[str, kpis.Kpi]:
    return kpis.compute(conn, SITE, MON, NEXT_MON, now=now)


def test_no_records_at_all_gives_null_not_zero(conn: Conn) -> None:
    make_site(conn)
    got = week(conn)
    assert list(got) == list(kpis.NAMES)
    for name in kpis.NAMES:
        if name != "backlog":
            assert got[name].value is None, name
    assert got["backlog"].value == 0  # no open work order is a count of zero


def test_unknown_site(conn: Conn) -> None:
    with pytest.raises(NotFound):
        kpis.compute(conn, "nowhere", MON, NEXT_MON, now=NOW)


def test_repair_timeliness_at_the_deadline(conn: Conn) -> None:
    make_site(conn)
    due = utc(2026, 11, 18, 10)
    # on time: resolved exactly at its deadline
    work_order(conn, opened=due - timedelta(hours=4), resolve_by=due, state="resolved",
               resolved_at=due)
    # late: resolved a second after
    work_order(conn, opened=due - timedelta(hours=4), resolve_by=due, state="resolved",
               resolved_at=due + timedelta(seconds=1), category="居家维修")
    # late: still open past its deadline
    work_order(conn, opened=due - timedelta(hours=4), resolve_by=due, category="设备",
               source="alarm")
    # not counted: cancelled; not a repair (整改); deadline outside the week
    work_order(conn, opened=due, resolve_by=due, state="cancelled", cancelled_at=due)
    work_order(conn, opened=due, resolve_by=due, category="整改", source="patrol")
    work_order(conn, opened=START - timedelta(days=2), resolve_by=START - timedelta(seconds=1))
    work_order(conn, opened=END - timedelta(days=1), resolve_by=END)
    k = week(conn)["repair_timeliness"]
    assert (k.numerator, k.denominator) == (1, 3)
    assert k.value == pytest.approx(1 / 3)
    assert k.target == 0.99
    assert k.breakdown["open_late"] == 1 and k.breakdown["late"] == 2
    assert k.breakdown["by_category"]["居家维修"]["value"] == 0


def test_an_open_ticket_not_yet_due_is_not_counted(conn: Conn) -> None:
    make_site(conn)
    due = utc(2026, 11, 18, 10)
    work_order(conn, opened=due - timedelta(hours=4), resolve_by=due)
    assert week(conn, now=due - timedelta(seconds=1))["repair_timeliness"].value is None
    assert week(conn, now=due)["repair_timeliness"].value == 0  # due now and still open


def test_period_across_daylight_saving_change(conn: Conn) -> None:
    make_site(conn, devices={"p1": "pump"})
    # Sunday 2026-10-25 in Berlin has 25 hours: 2026-10-24T22:00Z .. 2026-10-25T23:00Z.
    inside = utc(2026, 10, 25, 22, 30)   # 23:30 local (CET): in the day
    outside = utc(2026, 10, 24, 21, 30)  # 23:30 local the day before (CEST)
    for t in (inside, outside):
        work_order(conn, opened=t - timedelta(hours=1), resolve_by=t, state="resolved",
                   resolved_at=t)
    got = kpis.compute(conn, SITE, date(2026, 10, 25), date(2026, 10, 26), now=NOW)
    assert got["repair_timeliness"].denominator == 1
    assert got["mttr_seconds"].denominator == 1
    # a device in service counts 25 hours of that day
    assert got["equipment_intact"].breakdown["time_weighted"]["denominator"] == 25 * 3600
    spring = kpis.compute(conn, SITE, date(2026, 3, 29), date(2026, 3, 30), now=NOW)
    assert spring["equipment_intact"].breakdown["time_weighted"]["denominator"] == 23 * 3600


def test_response_timeliness_and_mean_times(conn: Conn) -> None:
    make_site(conn)
    t = utc(2026, 11, 17, 8)
    work_order(conn, opened=t, respond_by=t + timedelta(minutes=30), state="acknowledged",
               acknowledged_at=t + timedelta(minutes=30))          # on time, at the deadline
    work_order(conn, opened=t, respond_by=t + timedelta(minutes=30), state="resolved",
               acknowledged_at=t + timedelta(minutes=40),
               resolved_at=t + timedelta(hours=2), severity="critical")
    work_order(conn, opened=t, respond_by=t + timedelta(minutes=30))  # never answered: late
    got = week(conn)
    r = got["response_timeliness"]
    assert (r.numerator, r.denominator) == (1, 3)
    mtta = got["mtta_seconds"]
    assert mtta.value == (30 + 40) * 60 / 2 and mtta.denominator == 2
    assert mtta.p90 == pytest.approx(30 * 60 + 0.9 * 600)
    assert mtta.breakdown["by_severity"]["critical"]["value"] == 40 * 60
    mttr = got["mttr_seconds"]
    assert mttr.value == 7200 and mttr.p90 == 7200


def test_followups_satisfaction_and_complaints(conn: Conn) -> None:
    make_site(conn)
    t = utc(2026, 11, 17, 8)
    resolved = {"state": "resolved", "resolved_at": t + timedelta(hours=3)}
    a = work_order(conn, opened=t, category="居家维修", **resolved)
    b = work_order(conn, opened=t, category="公区维修", **resolved)
    work_order(conn, opened=t, category="公区维修", **resolved)
    work_order(conn, opened=t, category="设备", source="alarm", **resolved)  # nobody to call
    follow_up(conn, work_order=a, at=t + timedelta(days=1), satisfaction=5)
    follow_up(conn, work_order=b, at=t + timedelta(days=1), outcome="unreachable")
    follow_up(conn, work_order=b, at=t + timedelta(days=2), satisfaction=3)
    # complaints: one answered in time and closed handled, one answered late and still
    # open, one closed as not valid, one due after now
    due = utc(2026, 11, 19, 8)
    c1 = complaint(conn, "TS-2026-0001", opened=t, answer_by=due, state="closed",
                   resolution="handled", answered_at=due, closed_at=due + timedelta(days=1))
    complaint(conn, "TS-2026-0002", opened=t, answer_by=due, state="answered",
              answered_at=due + timedelta(hours=1))
    complaint(conn, "TS-2026-0003", opened=t, answer_by=due, state="closed",
              resolution="invalid", closed_at=due)
    complaint(conn, "TS-2026-0004", opened=t, answer_by=utc(2026, 11, 22, 12))
    follow_up(conn, complaint_id=c1, at=due + timedelta(days=1), satisfaction=4)
    got = week(conn, now=utc(2026, 11, 21, 12))
    f = got["followup_rate"]
    assert (f.numerator, f.denominator) == (3, 5)   # 3 work orders + 2 valid complaints
    cats = f.breakdown["by_category"]
    assert cats["居家维修"]["value"] == 1 and cats["居家维修"]["target"] == 1.0
    assert cats["公区维修"]["value"] == 0.5 and cats["公区维修"]["target"] == 0.9
    assert cats["complaints"]["value"] == 0.5 and "设备" not in cats
    s = got["satisfaction"]
    assert (s.numerator, s.denominator) == (2, 3)
    assert s.breakdown["by_score"] == {"1": 0, "2": 0, "3": 1, "4": 1, "5": 1}
    c = got["complaint_handling"]
    assert (c.numerator, c.denominator) == (1, 2)
    assert c.breakdown["answered_on_time"]["value"] == 0.5


def test_equipment_intact_from_tickets_and_status(conn: Conn) -> None:
    make_site(conn, devices={"p1": "pump", "p2": "pump", "m1": "meter", "m2": "meter"})
    conn.execute("INSERT INTO devices (site_id, id, type_id, name, status) VALUES"
                 " (%s, 'old', 'pump', 'old', 'retired')", (SITE,))
    day = timedelta(days=1)
    # p1: a major ticket open from the middle of the week to its end
    work_order(conn, opened=START + 3.5 * day, device="p1", source="alarm", category="设备")
    # p2: a minor ticket (does not count), m2: a critical one resolved within the week
    work_order(conn, opened=START, device="p2", severity="minor", source="alarm")
    work_order(conn, opened=START + day, device="m2", severity="critical", source="alarm",
               state="resolved", resolved_at=START + 2 * day)
    # m1 went offline before the week and came back after one day of it
    conn.execute("INSERT INTO device_status (time, site_id, device_id, status) VALUES"
                 " (%s, %s, 'm1', 'offline'), (%s, %s, 'm1', 'online')",
                 (START - day, SITE, START + day, SITE))
    k = week(conn)["equipment_intact"]
    assert (k.numerator, k.denominator, k.value) == (3, 4, 0.75)
    tw = k.breakdown["time_weighted"]
    assert tw["denominator"] == 4 * 7 * 86400
    assert tw["numerator"] == (28 - 3.5 - 1 - 1) * 86400
    assert [w["device"] for w in k.breakdown["worst"]] == ["p1", "m1", "m2"]


def test_patrol_and_inspection_completion(conn: Conn) -> None:
    make_site(conn)
    t = utc(2026, 11, 18, 12)
    run(conn, route="night", start=t, guard="g1",
        visits=[("on_time", False), ("early", False), ("late", False), ("missed", False)])
    run(conn, route="night", start=t + timedelta(hours=2), guard="g2",
        visits=[("on_time", False), ("out_of_order:on_time", False), ("pending", False)])
    run(conn, route="daily", start=t, guard="g1",
        visits=[("on_time", True), ("late", True)])
    run(conn, route="daily", start=t + timedelta(days=1), guard="g1",
        visits=[("on_time", True), ("missed", True)])
    run(conn, route="daily", start=t + timedelta(days=2), guard="g1",
        visits=[("on_time", True), ("pending", True)])       # not due yet
    run(conn, route="night", start=START - timedelta(hours=1), visits=[("missed", False)])
    got = week(conn)
    p = got["patrol_completion"]
    assert (p.numerator, p.denominator) == (4, 6)
    assert (p.breakdown["late"], p.breakdown["missed"], p.breakdown["out_of_order"]) == (1, 1, 1)
    assert p.breakdown["by_guard"]["g1"] == {"value": 0.5, "numerator": 2, "denominator": 4,
                                             "late": 1, "missed": 1, "out_of_order": 0}
    assert p.breakdown["by_guard"]["g2"]["value"] == 1
    assert set(p.breakdown["by_route"]) == {"night"}
    i = got["inspection_completion"]
    assert (i.numerator, i.denominator, i.target) == (1, 2, 1.0)
    assert i.breakdown["late"] == 1


def test_a_post_run_is_counted_for_whoever_walked_it(conn: Conn) -> None:
    make_site(conn)
    t = utc(2026, 11, 18, 12)
    rid = run(conn, route="gate", start=t, guard=None, post="main-gate",
              visits=[("on_time", False), ("missed", False)])
    run(conn, route="gate", start=t + timedelta(hours=1), guard=None, post="main-gate",
        visits=[("missed", False)])
    scan = "00000000-0000-4000-8000-000000000001"
    conn.execute("UPDATE patrol_visits SET scan_id = %s, scan_time = %s WHERE run_id = %s"
                 " AND seq = 1", (scan, t, rid))
    conn.execute("INSERT INTO scan_checks (scan_id, scan_time, site_id, guard_id, tag,"
                 " disposition, run_id, seq, checked_at) VALUES (%s, %s, %s, 'g-wang', 't',"
                 " 'matched', %s, 1, %s)", (scan, t, SITE, rid, t))
    by_guard = week(conn)["patrol_completion"].breakdown["by_guard"]
    assert by_guard["g-wang"]["denominator"] == 2
    assert by_guard["post:main-gate"]["missed"] == 1


def test_backlog_ages_and_overdue(conn: Conn) -> None:
    make_site(conn)
    day = timedelta(days=1)
    end = END  # read after the week: the backlog at its end
    work_order(conn, opened=end - 0.5 * day)                         # < 1 d
    work_order(conn, opened=end - day, resolve_by=end - 0.5 * day)   # exactly 1 d, overdue
    work_order(conn, opened=end - 5 * day, state="in_progress")      # 3-7 d, overdue
    work_order(conn, opened=end - 30 * day, state="acknowledged", resolve_by=end + day)
    work_order(conn, opened=end - 2 * day, state="resolved", resolved_at=end)  # done at end
    work_order(conn, opened=end - 2 * day, state="resolved",
               resolved_at=end + day)  # resolved after the week: open at its end
    work_order(conn, opened=end - 20 * day, state="closed", closed_at=end - 10 * day)
    k = week(conn)["backlog"]
    assert k.value == 5
    assert k.breakdown["ages"] == {"lt_1d": 1, "1d_3d": 2, "3d_7d": 1, "gt_7d": 1}
    assert k.breakdown["overdue"] == 3
    # read in the middle of the week: at now, not at the week's end
    mid = week(conn, now=end - 3 * day)["backlog"]
    assert mid.value == 2 and mid.breakdown["overdue"] == 1


def test_repeat_faults_and_mtbf(conn: Conn) -> None:
    make_site(conn, devices={"p1": "pump", "p2": "pump", "e1": "elevator"})
    day = timedelta(days=1)
    first = work_order(conn, opened=START + day, device="p1", source="alarm", rule="r")
    fault(conn, first, START + day, "alarm:1")
    fault(conn, first, START + 2 * day, "alarm:2")          # a repeat on the live ticket
    linked = work_order(conn, opened=START + 4 * day, device="p1", source="alarm", rule="r",
                        repeat_of=first)
    fault(conn, linked, START + 4 * day, "alarm:3")         # a new ticket linked: a repeat
    other = work_order(conn, opened=START + day, device="e1", source="alarm", rule="d")
    fault(conn, other, START + day, "alarm:4")
    before = work_order(conn, opened=START - day, device="p2", source="alarm", rule="r")
    fault(conn, before, START - day, "alarm:5")             # before the week
    fault(conn, before, START + day, "alarm:6")             # its repeat inside the week
    got = week(conn)
    r = got["repeat_faults"]
    assert (r.value, r.numerator, r.denominator) == (3, 3, 5)
    assert r.breakdown["by_device"] == {"p1": {"faults": 3, "repeats": 2},
                                        "p2": {"faults": 1, "repeats": 1}}
    m = got["mtbf_seconds"]
    week_s = 7 * 86400
    assert (m.numerator, m.denominator) == (3 * week_s, 5)
    assert m.breakdown["by_type"]["pump"]["value"] == 2 * week_s / 4
    assert m.breakdown["by_type"]["elevator"]["value"] == week_s


def test_targets_come_from_the_site_file(conn: Conn) -> None:
    load_site(conn, {"site": {"id": SITE, "name": "B", "timezone": "Europe/Berlin"},
                     "kpi_targets": {"repair_timeliness": 0.95, "mtta_seconds": 600,
                                     "followup_by_category": {"公区维修": 0.5}}}, now=NOW)
    got = week(conn)
    assert got["repair_timeliness"].target == 0.95
    assert got["mtta_seconds"].target == 600
    assert got["satisfaction"].target == 0.98   # not written: the seed's value


def test_compare_gives_the_previous_period(conn: Conn) -> None:
    make_site(conn)
    due = utc(2026, 11, 18, 10)
    work_order(conn, opened=due, resolve_by=due, state="resolved", resolved_at=due)
    work_order(conn, opened=due - timedelta(days=7), resolve_by=due - timedelta(days=7),
               state="resolved", resolved_at=due)
    got = kpis.compare(conn, SITE, MON, NEXT_MON, now=NOW)
    assert got["repair_timeliness"].value == 1 and got["repair_timeliness"].previous == 0
    assert got["satisfaction"].previous is None
    many = kpis.compute_many(conn, [SITE], MON, NEXT_MON, now=NOW, previous=True)
    assert many[SITE] == got
