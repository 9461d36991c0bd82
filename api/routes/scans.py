"""Scans over HTTP, for handhelds without MQTT: the MQTT scan payload, one or an array.

`POST /api/v1/scans?site=S&guard=G` takes exactly the body a handheld would publish on
`caretaker/v1/S/guards/G/scans` (site and guard in the query, like in the topic, so the body
stays identical). A guard token that names a guard posts only as that guard (guard may be
left out); a site-scoped token only for its site (site may be left out). Scans are stored
through the ingest's own functions, idempotently by scan_id: sending a batch again is safe.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel

from api.deps import ClockDep, Db, Reader, require, scoped_site
from api.errors import ApiError
from api.patrol import own_guard
from api.resource import Page, PagingDep
from caretaker.tokens import Principal
from ingest.payloads import PayloadError, parse_scans
from ingest.store import store_scans
from rules.patrol import queries

router = APIRouter(prefix="/scans", tags=["patrol"])

Scanner = Annotated[Principal, Depends(require("supervisor", "engineer", "guard"))]
Disposition = Literal["matched", "repeat", "unknown_tag", "unscheduled"]


class ScansAccepted(BaseModel):
    site_id: str
    guard_id: str
    received: int
    stored: int
    duplicates: int
    scan_ids: list[UUID]


class ScanPublic(BaseModel):
    scan_id: UUID
    time: datetime
    site_id: str
    guard_id: str
    tag: str
    checkpoint_id: str | None
    result: str
    readings: dict[str, Any]
    note: str | None
    received_at: datetime
    disposition: str | None   # null: not yet checked by the patrol worker
    suspicious: bool | None
    run_id: int | None
    seq: int | None


def _exists(conn: Db, site: str) -> bool:
    return conn.execute("SELECT 1 FROM sites WHERE id = %s", (site,)).fetchone() is not None


@router.post("", response_model=ScansAccepted, status_code=202)
def post_scans(conn: Db, principal: Scanner, clock: ClockDep,
               payload: Annotated[dict[str, Any] | list[Any], Body()],
               site: str | None = None, guard: str | None = None) -> dict[str, Any]:
    """Accept one scan or an array (offline sync); the patrol worker checks them at once."""
    site_id = scoped_site(principal, site)
    if site_id is None:
        raise ApiError(422, "give ?site=", code="invalid")
    guard_id = guard or principal.guard_id
    if principal.guard_id is not None and guard_id != principal.guard_id:
        raise ApiError(403, f"this token may post scans only as guard {principal.guard_id!r}",
                       code="forbidden")
    if guard_id is None:
        raise ApiError(422, "give ?guard=", code="invalid")
    if not _exists(conn, site_id):
        raise ApiError(404, f"site {site_id!r} not found")
    now = clock()
    try:
        scans = parse_scans(site_id, guard_id, payload, now=now)
    except PayloadError as exc:
        raise ApiError(422, str(exc), code="invalid") from exc
    stored = store_scans(conn, site_id, guard_id, scans, received_at=now)
    return {"site_id": site_id, "guard_id": guard_id, "received": len(scans),
            "stored": stored, "duplicates": len(scans) - stored,
            "scan_ids": [s.scan_id for s in scans]}


@router.get("", response_model=Page[ScanPublic])
def list_scans(conn: Db, principal: Reader, page: PagingDep, site: str | None = None,
               guard: str | None = None, disposition: Disposition | None = None,
               tag: str | None = None, since: datetime | None = None,
               until: datetime | None = None) -> dict[str, Any]:
    """Scans with their disposition (e.g. ?disposition=unknown_tag), newest first."""
    items, total = queries.list_scans(
        conn, scope=scoped_site(principal, site), guard=own_guard(principal), site=site,
        guard_id=guard, disposition=disposition, tag=tag, since=since, until=until,
        limit=page.limit, offset=page.offset)
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}
