"""Maintenance windows: store, change, list and read them."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from caretaker.errors import Invalid, NotFound
from caretaker.ids import Ident
from caretaker.paging import Where, fetch_page
from caretaker.site_config import Text

COLUMNS = ("device_id", "starts_at", "ends_at", "reason", "created_by")


class WindowError(Invalid):
    """A maintenance window that cannot be used; the message says why."""


class WindowNotFound(NotFound):
    """No such maintenance window (in the caller's scope)."""


class MaintenanceWindow(BaseModel):
    """A period when a device (or the whole site) raises no tickets.

    Times without a UTC offset are the site's local time. The site file writes
    `{id, device, start, end, reason}`; the API `device_id`, `starts_at`, `ends_at`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    site_id: Ident | None = Field(default=None, description=(
        "the window's site: required in the API; a site file's windows belong to its site"))
    id: Ident | None = Field(default=None, description="made when not given (API only)")
    device_id: Ident | None = Field(default=None, description="null: the whole site",
                                    validation_alias=AliasChoices("device_id", "device"))
    starts_at: datetime = Field(validation_alias=AliasChoices("starts_at", "start"))
    ends_at: datetime = Field(validation_alias=AliasChoices("ends_at", "end"))
    reason: Text = Field(min_length=1)


def site_zone(conn: psycopg.Connection[Any], site_id: str) -> ZoneInfo:
    """The site's time zone; WindowError for an unknown site."""
    row = conn.execute("SELECT timezone FROM sites WHERE id = %s", (site_id,)).fetchone()
    if row is None:
        raise WindowError(f"unknown site {site_id!r}")
    return ZoneInfo(row["timezone"])


def local(when: datetime, zone: ZoneInfo) -> datetime:
    """An aware time: one without a UTC offset is taken as the site's local time."""
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)


def check(conn: psycopg.Connection[Any], site_id: str, values: dict[str, Any]) -> None:
    """Refuse a window of an unknown site, ending before it starts, or naming an unknown device.

    Naive times in `values` are made the site's local time.
    """
    zone = site_zone(conn, site_id)
    for key in ("starts_at", "ends_at"):
        values[key] = local(values[key], zone)
    if values["ends_at"] <= values["starts_at"]:
        raise WindowError("a maintenance window must end after it starts")
    if values.get("device_id") is not None and conn.execute(
            "SELECT 1 FROM devices WHERE site_id = %s AND id = %s",
            (site_id, values["device_id"])).fetchone() is None:
        raise WindowError(f"unknown device {values['device_id']!r} in site {site_id!r}")


def upsert_window(conn: psycopg.Connection[Any], site_id: str, window_id: str | None,
                  values: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """Insert or replace a window by (site, id); a new id is made when none is given."""
    values = dict(values)
    check(conn, site_id, values)
    window_id = window_id or f"mw-{secrets.token_hex(4)}"
    row = conn.execute(
        "INSERT INTO maintenance_windows (site_id, id, device_id, starts_at, ends_at, reason,"
        " created_by, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (site_id, id) DO UPDATE SET device_id = EXCLUDED.device_id,"
        " starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, reason = EXCLUDED.reason"
        " RETURNING *",
        (site_id, window_id, values.get("device_id"), values["starts_at"], values["ends_at"],
         values["reason"], values.get("created_by"), now)).fetchone()
    return dict(row or {})


def get_window(conn: psycopg.Connection[Any], site_id: str,
               window_id: str) -> dict[str, Any] | None:
    """One window, or None."""
    row = conn.execute("SELECT * FROM maintenance_windows WHERE site_id = %s AND id = %s",
                       (site_id, window_id)).fetchone()
    return dict(row) if row else None


def update_window(conn: psycopg.Connection[Any], site_id: str, window_id: str,
                  changes: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """Change a window's device, times or reason."""
    row = get_window(conn, site_id, window_id)
    if row is None:
        raise WindowNotFound(f"maintenance window {window_id!r} not found")
    values = {c: row[c] for c in COLUMNS}
    values.update({k: v for k, v in changes.items() if k in COLUMNS})
    return upsert_window(conn, site_id, window_id, values, now=now)


def delete_window(conn: psycopg.Connection[Any], site_id: str, window_id: str) -> bool:
    """Remove a window; False if there was none."""
    return conn.execute("DELETE FROM maintenance_windows WHERE site_id = %s AND id = %s",
                        (site_id, window_id)).rowcount > 0


def list_windows(conn: psycopg.Connection[Any], *, site: str | None, device: str | None,
                 active_at: datetime | None, scope: str | None, limit: int,
                 offset: int) -> tuple[list[dict[str, Any]], int]:
    """One page of windows (optionally those open at a time) and how many match."""
    where = Where()
    for column, value in (("site_id", site), ("device_id", device), ("site_id", scope)):
        where.equals(column, value)
    if active_at is not None:
        where.add("starts_at <= %s AND ends_at > %s", active_at, active_at)
    return fetch_page(conn, "maintenance_windows", where, order="starts_at DESC, id",
                      limit=limit, offset=offset)
