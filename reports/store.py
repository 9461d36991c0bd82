"""Stored weekly reports: made on each site's schedule exactly once, kept with their history,
listed, downloaded, and announced through the notification channels."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from caretaker.errors import NotFound
from reports import weekly
from reports._sql import one, rows
from reports.periods import Week, due_week
from reports.settings import clock_time, site_settings
from tickets.notify import notify

log = logging.getLogger(__name__)

SUMMARY = """id, site_id, kind, period, period_start, period_end, language, kpis, created_at,
    created_by, octet_length(html) AS html_bytes, octet_length(pdf) AS pdf_bytes"""


def exists(conn: psycopg.Connection[Any], site_id: str, week: Week) -> bool:
    """Whether the weekly report of this site and week is stored."""
    return one(conn, "SELECT 1 FROM reports WHERE site_id = %s AND kind = 'weekly'"
                     " AND period = %s", (site_id, str(week))) is not None


def make_weekly(conn: psycopg.Connection[Any], site_id: str, week: Week, *, now: datetime,
                language: str | None = None, created_by: str = "schedule") -> int | None:
    """Gather, render and store a site's weekly report, and announce it; its id, or None when
    it was stored already (by another worker, or before a restart)."""
    if exists(conn, site_id, week):
        return None
    lang = language or site_settings(conn, site_id).language
    data = weekly.gather(conn, site_id, week, now=now)
    html, pdf = weekly.render(data, lang)
    row = one(conn, """
        INSERT INTO reports (site_id, kind, period, period_start, period_end, language, kpis,
                             html, pdf, created_at, created_by)
        VALUES (%s, 'weekly', %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (site_id, kind, period) DO NOTHING RETURNING id""",
              (site_id, str(week), data.start, data.end, lang, Jsonb(data.kpi_table()),
               html.encode(), pdf, now, created_by))
    if row is None:
        return None
    report_id = int(row["id"])
    notify(conn, site_id=site_id, subject="report", event="weekly", now=now, record={
        "id": report_id, "site": site_id, "site_name": data.site.name, "week": str(week),
        "language": lang, "link": f"/api/v1/reports/{report_id}.pdf",
        "html": f"/api/v1/reports/{report_id}.html"})
    return report_id


def weekly_due(conn: psycopg.Connection[Any], now: datetime) -> list[int]:
    """The rules worker's weekly job: each configured site's due report, if not made yet.

    A week is due from its site's report time (Monday 08:00 by default); after downtime the
    latest due week is made at once. One site failing does not stop the others.
    """
    made = []
    for site in rows(conn, "SELECT id, timezone FROM sites WHERE NOT auto_registered"
                           " ORDER BY id"):
        spec = site_settings(conn, site["id"])
        week = due_week(now, site["timezone"], weekday=spec.weekly.weekday,
                        at=clock_time(spec.weekly.at))
        if exists(conn, site["id"], week):
            continue
        try:
            with conn.transaction():
                made_id = make_weekly(conn, site["id"], week, now=now)
        except Exception:
            log.exception("weekly report of %s for %s failed; trying again later",
                          site["id"], week)
            continue
        if made_id is not None:
            log.info("weekly report %s of %s for %s stored", made_id, site["id"], week)
            made.append(made_id)
    return made


def list_reports(conn: psycopg.Connection[Any], *, site: str | None, scope: str | None,
                 limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Stored reports newest first (without their bytes), of one site or all in scope."""
    p = {"site": site, "scope": scope, "limit": limit, "offset": offset}
    where = (" WHERE (%(site)s::text IS NULL OR site_id = %(site)s)"
             " AND (%(scope)s::text IS NULL OR site_id = %(scope)s)")
    total = one(conn, "SELECT count(*) AS n FROM reports" + where, p)  # noqa: S608
    items = rows(conn, "SELECT " + SUMMARY + " FROM reports" + where  # noqa: S608
                 + " ORDER BY period_start DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s", p)
    return items, int(total["n"]) if total else 0


def get_report(conn: psycopg.Connection[Any], report_id: int, *, scope: str | None,
               content: str | None = None) -> dict[str, Any]:
    """A stored report's summary, with its `html` or `pdf` bytes when asked; NotFound when
    there is none or it belongs to a site outside `scope`."""
    extra = ", html" if content == "html" else ", pdf" if content == "pdf" else ""
    row = one(conn, "SELECT " + SUMMARY + extra + " FROM reports WHERE id = %s"  # noqa: S608
              " AND (%s::text IS NULL OR site_id = %s)", (report_id, scope, scope))
    if row is None:
        raise NotFound(f"report {report_id} not found")
    return row
