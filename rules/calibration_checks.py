"""Calibration checks' I/O: the section's loader, each scan's comparisons, their tickets, reads.

`check_scan` runs in the transaction that checks an equipment scan (rules/patrol/engine.py):
for each linked checklist answer it finds the sensor's reading nearest the scan time in the
`telemetry` view, records the comparison, and opens or notes the device+metric's calibration
ticket (rules/calibration.py decides). Checks of one device and metric are serialised by an
advisory lock, so parallel workers count a run of disagreements once.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from caretaker.errors import Invalid
from caretaker.paging import Where, fetch_page
from rules import calibration as cal
from tickets.work_orders import LIVE, open_work_order

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
ACTOR = "system:calibration"
HISTORY = 100  # earlier checks looked at when counting disagreements in a row


class CalibrationConfigError(Invalid):
    """A `calibration:` link that cannot apply; the message names it by its index."""


# --- the site-file section ------------------------------------------------------------------

def load_calibration(conn: Conn, site_id: str, links: list[cal.Link], *, now: datetime
                     ) -> None:
    """Replace the site's calibration links (checkpoints and devices must already be loaded)."""
    problems = []
    rows = []
    for i, link in enumerate(links):
        cp = conn.execute("SELECT kind, device_id, checklist FROM checkpoints"
                          " WHERE site_id = %s AND id = %s", (site_id, link.checkpoint)
                          ).fetchone()
        why = cal.check_against_checklist(link, cp)
        device = link.device or (cp["device_id"] if cp else None)
        if why is None and conn.execute("SELECT 1 FROM devices WHERE site_id = %s AND id = %s",
                                        (site_id, device)).fetchone() is None:
            why = f"device {device!r} does not exist"
        if why is not None:
            problems.append(f"calibration[{i}]: {why}")
            continue
        rows.append((site_id, link.checkpoint, link.reading, device, link.metric,
                     link.tolerance.value, link.tolerance.percent, link.repeat, link.within,
                     link.severity))
    if problems:
        raise CalibrationConfigError("; ".join(problems))
    keep = [(r[1], r[2]) for r in rows]
    conn.execute("DELETE FROM calibration_links WHERE site_id = %s AND (checkpoint_id, reading)"
                 " <> ALL (SELECT * FROM unnest(%s::text[], %s::text[]))",
                 (site_id, [k[0] for k in keep], [k[1] for k in keep]))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO calibration_links (site_id, checkpoint_id, reading, device_id, metric,"
            "   tolerance, tolerance_pct, repeat, within, severity)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (site_id, checkpoint_id, reading) DO UPDATE SET"
            "   device_id = EXCLUDED.device_id, metric = EXCLUDED.metric,"
            "   tolerance = EXCLUDED.tolerance, tolerance_pct = EXCLUDED.tolerance_pct,"
            "   repeat = EXCLUDED.repeat, within = EXCLUDED.within, severity = EXCLUDED.severity"
            " WHERE (calibration_links.device_id, calibration_links.metric,"
            "   calibration_links.tolerance, calibration_links.tolerance_pct,"
            "   calibration_links.repeat, calibration_links.within, calibration_links.severity)"
            " IS DISTINCT FROM (EXCLUDED.device_id, EXCLUDED.metric, EXCLUDED.tolerance,"
            "   EXCLUDED.tolerance_pct, EXCLUDED.repeat, EXCLUDED.within, EXCLUDED.severity)",
            rows)


# --- checking a scan ------------------------------------------------------------------------

def sensor_value(conn: Conn, *, site_id: str, device_id: str, metric: str, at: datetime,
                 within: timedelta) -> tuple[float, datetime] | None:
    """The device's reading of `metric` nearest `at`, at most `within` away (None: none)."""
    row = conn.execute(
        "SELECT time, value FROM ("
        "  (SELECT time, value FROM telemetry WHERE site_id = %(s)s AND device_id = %(d)s"
        "     AND metric = %(m)s AND value IS NOT NULL AND time <= %(t)s"
        "     AND time >= %(t)s - %(w)s ORDER BY time DESC LIMIT 1)"
        "  UNION ALL"
        "  (SELECT time, value FROM telemetry WHERE site_id = %(s)s AND device_id = %(d)s"
        "     AND metric = %(m)s AND value IS NOT NULL AND time > %(t)s"
        "     AND time <= %(t)s + %(w)s ORDER BY time LIMIT 1)) nearest"
        " ORDER BY abs(extract(epoch FROM time - %(t)s)), time LIMIT 1",
        {"s": site_id, "d": device_id, "m": metric, "t": at, "w": within}).fetchone()
    return None if row is None else (float(row["value"]), row["time"])


def _lock(conn: Conn, site_id: str, device_id: str, metric: str) -> None:
    digest = hashlib.blake2b(f"calibration|{site_id}|{device_id}|{metric}".encode(),
                             digest_size=8).digest()
    conn.execute("SELECT pg_advisory_xact_lock(%s)",
                 (int.from_bytes(digest, "big", signed=True),))


def _live_ticket(conn: Conn, site_id: str, device_id: str, metric: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM work_orders WHERE site_id = %s AND device_id = %s"
        " AND source = 'calibration' AND rule_id = %s AND state = ANY(%s)"
        " ORDER BY opened_at DESC, id DESC LIMIT 1",
        (site_id, device_id, rule_id(metric), list(LIVE))).fetchone()
    return None if row is None else int(row["id"])


def rule_id(metric: str) -> str:
    """The calibration ticket's rule_id: one live ticket per device and metric."""
    return f"calibration:{metric}"


def check_scan(conn: Conn, scan: dict[str, Any], checkpoint: dict[str, Any], now: datetime
               ) -> int:
    """Compare the scan's linked answers with the sensors; record each; return how many."""
    readings = scan.get("readings") or {}
    links = conn.execute(
        "SELECT * FROM calibration_links WHERE site_id = %s AND checkpoint_id = %s"
        " ORDER BY reading", (scan["site_id"], checkpoint["id"])).fetchall()
    done = 0
    for link in links:
        manual = cal.manual_number(readings.get(link["reading"]))
        if manual is None:
            continue  # unanswered, or not a number: the checklist finding says so
        if _check_one(conn, scan, checkpoint, link, manual, now):
            done += 1
    return done


def _check_one(conn: Conn, scan: dict[str, Any], checkpoint: dict[str, Any],
               link: dict[str, Any], manual: float, now: datetime) -> bool:
    site, device, metric = scan["site_id"], link["device_id"], link["metric"]
    _lock(conn, site, device, metric)
    found = sensor_value(conn, site_id=site, device_id=device, metric=metric, at=scan["time"],
                         within=link["within"])
    tolerance = cal.Tolerance(link["tolerance"], link["tolerance_pct"])
    result = cal.compare(manual, found[0] if found else None, tolerance)
    earlier = [r["outcome"] for r in conn.execute(
        "SELECT outcome FROM calibration_checks WHERE site_id = %s AND device_id = %s"
        " AND metric = %s AND outcome <> 'no_sensor_value' AND scan_time <= %s"
        " ORDER BY scan_time DESC, id DESC LIMIT %s",
        (site, device, metric, scan["time"], HISTORY)).fetchall()]
    run = cal.streak(result.outcome, earlier)
    live = _live_ticket(conn, site, device, metric)
    action = cal.decide(result.outcome, run, link["repeat"], live_ticket=live is not None)
    row = conn.execute(
        "INSERT INTO calibration_checks (site_id, checkpoint_id, reading, device_id, metric,"
        "   guard_id, scan_id, scan_time, manual_value, sensor_value, sensor_time, difference,"
        "   allowed, outcome, streak, wants_ticket, work_order_id, checked_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (scan_id, checkpoint_id, reading) DO NOTHING RETURNING *",
        (site, checkpoint["id"], link["reading"], device, metric, scan["guard_id"],
         scan["scan_id"], scan["time"], manual, found[0] if found else None,
         found[1] if found else None, result.difference, result.allowed, result.outcome, run,
         action == "open", live if action.startswith("note") else None, now)).fetchone()
    if row is None:
        return False  # checked before
    check = {**row, "checkpoint_name": checkpoint.get("name"), "zone_id": checkpoint.get("zone_id"),
             "checklist": checkpoint.get("checklist"), "severity": link["severity"],
             "repeat": link["repeat"], "tolerance_text": str(tolerance),
             "timezone": _timezone(conn, site)}
    if action == "open":
        _open_in_savepoint(conn, check, now)
    elif live is not None and action != "none":
        _note(conn, live, check, now)
    return True


# --- tickets --------------------------------------------------------------------------------

def _timezone(conn: Conn, site_id: str) -> str:
    row = conn.execute("SELECT timezone FROM sites WHERE id = %s", (site_id,)).fetchone()
    return str(row["timezone"]) if row else "UTC"


def _item(check: dict[str, Any]) -> tuple[str, str]:
    """The checklist item's label and unit (' MPa') for the reading checked."""
    for item in check.get("checklist") or []:
        if isinstance(item, dict) and item.get("reading") == check["reading"]:
            unit = f" {item['unit']}" if item.get("unit") else ""
            return str(item.get("item") or check["reading"]), unit
    return str(check["reading"]), ""


def describe(check: dict[str, Any]) -> str:
    """One check in a line: when, the reading, the sensor's value, the difference."""
    _, unit = _item(check)
    when = check["scan_time"].astimezone(ZoneInfo(check.get("timezone") or "UTC")).strftime(
        "%Y-%m-%d %H:%M")
    if check["sensor_value"] is None:
        return f"{when}: reading {check['manual_value']:g}{unit}, no sensor value near it"
    return (f"{when}: reading {check['manual_value']:g}{unit} vs sensor "
            f"{check['sensor_value']:g}{unit} (difference {check['difference']:+.4g}, "
            f"tolerance ±{check['allowed']:.4g}) by {check['guard_id']}")


def _open_in_savepoint(conn: Conn, check: dict[str, Any], now: datetime) -> None:
    try:
        with conn.transaction():
            _open(conn, check, now)
    except Exception:
        log.exception("could not open the calibration ticket of check %s (retried)",
                      check["id"])


def _open(conn: Conn, check: dict[str, Any], now: datetime) -> int:
    """Open the device+metric's calibration ticket naming both values; link the check."""
    live = _live_ticket(conn, check["site_id"], check["device_id"], check["metric"])
    if live is not None:  # opened since (a retry): the check is noted on it
        _note(conn, live, check, now)
        return live
    label, unit = _item(check)
    runs = conn.execute(
        "SELECT * FROM calibration_checks WHERE site_id = %s AND device_id = %s"
        " AND metric = %s AND outcome = 'disagreed' AND scan_time <= %s"
        " ORDER BY scan_time DESC, id DESC LIMIT %s",
        (check["site_id"], check["device_id"], check["metric"], check["scan_time"],
         max(1, min(check["streak"], 10)))).fetchall()
    context = {"checklist": check["checklist"], "timezone": check["timezone"]}
    lines = "\n".join(f"- {describe({**r, **context})}" for r in reversed(runs))
    title = (f"Calibration 校准: {label} at {check['checkpoint_name'] or check['checkpoint_id']}"
             f" — gauge {check['manual_value']:g}{unit} vs sensor "
             f"{check['sensor_value']:g}{unit}")
    description = (
        f"The technician's reading of {label} and sensor {check['metric']} of "
        f"{check['device_id']} disagree by more than the tolerance ({check['tolerance_text']}) "
        f"{check['streak']} times in a row (calibration.repeat: {check['repeat']}): "
        f"gauge {check['manual_value']:g}{unit}, sensor {check['sensor_value']:g}{unit}. "
        f"Check which one is wrong (calibrate or replace the gauge or the sensor).\n{lines}")
    wo = open_work_order(
        conn, site_id=check["site_id"], device_id=check["device_id"],
        severity=check["severity"], title=title[:200], description=description,
        source="calibration", source_ref=f"check:{check['id']}", now=now,
        rule_id=rule_id(check["metric"]), category="设备",
        checkpoint_id=check["checkpoint_id"], zone_id=check["zone_id"])
    conn.execute("UPDATE calibration_checks SET work_order_id = %s WHERE id = %s",
                 (wo, check["id"]))
    return wo


def _note(conn: Conn, wo_id: int, check: dict[str, Any], now: datetime) -> None:
    """Note a later check (agreeing or not) on the live calibration ticket."""
    verdict = "agrees again" if check["outcome"] == "agreed" else "still disagrees"
    conn.execute("INSERT INTO work_order_history (work_order_id, at, action, actor, note)"
                 " VALUES (%s, %s, 'calibration_check', %s, %s)",
                 (wo_id, now, ACTOR, f"check {check['id']} {verdict}: {describe(check)}"))
    conn.execute("UPDATE work_orders SET updated_at = %s WHERE id = %s", (now, wo_id))
    conn.execute("UPDATE calibration_checks SET work_order_id = %s WHERE id = %s",
                 (wo_id, check["id"]))


def open_pending(conn: Conn, now: datetime, *, limit: int = 50) -> int:
    """Open the tickets that checks asked for and did not get (the clock's retry)."""
    rows = conn.execute(
        "SELECT k.*, c.name AS checkpoint_name, c.zone_id, c.checklist, l.severity, l.repeat,"
        "   l.tolerance, l.tolerance_pct FROM calibration_checks k"
        " JOIN checkpoints c ON c.site_id = k.site_id AND c.id = k.checkpoint_id"
        " LEFT JOIN calibration_links l ON l.site_id = k.site_id"
        "   AND l.checkpoint_id = k.checkpoint_id AND l.reading = k.reading"
        " WHERE k.wants_ticket AND k.work_order_id IS NULL"
        " ORDER BY k.id LIMIT %s FOR UPDATE OF k SKIP LOCKED", (limit,)).fetchall()
    opened = 0
    for r in rows:
        tolerance = cal.Tolerance(r["tolerance"] if r["tolerance"] is not None else 0.0,
                                  bool(r["tolerance_pct"]))
        check = {**r, "severity": r["severity"] or "minor", "repeat": r["repeat"] or r["streak"],
                 "tolerance_text": str(tolerance), "timezone": _timezone(conn, r["site_id"])}
        try:
            with conn.transaction():
                _lock(conn, r["site_id"], r["device_id"], r["metric"])
                _open(conn, check, now)
            opened += 1
        except Exception:
            log.exception("could not open the calibration ticket of check %s", r["id"])
    return opened


# --- reads for the API ----------------------------------------------------------------------

def list_checks(conn: Conn, *, scope: str | None, guard: str | None, site: str | None,
                device: str | None, checkpoint: str | None, metric: str | None,
                outcome: str | None, since: datetime | None, until: datetime | None,
                limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Checks matching the filters (since/until: the scan time), newest first, and the total."""
    where = Where()
    where.equals("k.site_id", scope)
    where.equals("k.guard_id", guard)
    where.equals_all({"k.site_id": site, "k.device_id": device, "k.checkpoint_id": checkpoint,
                      "k.metric": metric, "k.outcome": outcome})
    where.within("k.scan_time", since, until)
    return fetch_page(
        conn, "calibration_checks", where,
        select="k.id, k.site_id, k.checkpoint_id, c.name AS checkpoint_name, k.reading,"
               " k.device_id, k.metric, k.guard_id, k.scan_id, k.scan_time, k.manual_value,"
               " k.sensor_value, k.sensor_time, k.difference, k.allowed, k.outcome, k.agreed,"
               " k.streak, k.work_order_id, k.checked_at",
        source="calibration_checks k LEFT JOIN checkpoints c"
               " ON c.site_id = k.site_id AND c.id = k.checkpoint_id",
        order="k.scan_time DESC, k.id DESC", limit=limit, offset=offset)
