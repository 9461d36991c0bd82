"""Scans over HTTP, for handhelds without MQTT: the MQTT scan payload, one or an array.

`POST /api/v1/scans?site=S&guard=G` takes exactly the body a handheld would publish on
`caretaker/v1/S/guards/G/scans` (site and guard in the query, like in the topic, so the body
stays identical). A guard token that names a guard posts only as that guard (guard may be
left out); a site-scoped token only for its site (site may be left out). Scans are stored
through the ingest's own functions, idempotently by scan_id (whatever the timestamp): sending
a batch again is safe. A single scan is accepted (202) or refused whole (422, with why); in an
array each scan is judged alone: the answer (202) says, per item, whether it was stored, a
duplicate, or refused (and why), and refused items are also kept as dead letters (source
`http`), like the MQTT ones, where supervisors see them — a handheld syncing in the background
cannot lose them unseen. A scan of a guard who is not in the registry is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from api.deps import ClockDep, Db, Reader, require, scoped_site
from api.errors import ApiError
from api.patrol import own_guard
from api.resource import CursorPage, CursorParam, PagingDep, When, cursor_answer
from caretaker.ids import IDENT_PATTERN
from caretaker.tokens import Principal
from ingest.batch import DeadLetter
from ingest.payloads import (
    MAX_NOTE,
    MAX_TAG,
    PayloadError,
    bad_item,
    datetime_to_ms,
    parse_scans,
)
from ingest.store import store_dead_letters, store_scans
from rules.patrol import queries

router = APIRouter(prefix="/scans", tags=["patrol"])

Scanner = Annotated[Principal, Depends(require("supervisor", "engineer", "guard"))]
Disposition = Literal["matched", "repeat", "unknown_tag", "unscheduled", "verification"]
ResultFilter = Literal["ok", "normal", "abnormal"]  # normal: the same as ok
IdParam = Annotated[str | None, Query(pattern=IDENT_PATTERN)]
MAX_SCANS = 1000  # scans in one request; a handheld syncs a longer backlog in several
EXAMPLE_SCAN: dict[str, Any] = {
    "scan_id": "5b0f2f0e-8a57-4d55-9a1c-2f3c4e5d6a7b", "tag": "04:A2:19:7C",
    "ts": 1763884800000, "result": "abnormal",
    "readings": {"pressure": 0.21, "no_leaks": True}, "note": "gauge low"}


class ScanIn(BaseModel):
    """One scan as a handheld sends it (over MQTT or here): the body's schema."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_SCAN]})

    scan_id: UUID = Field(description="the scan's identity: sending it again stores nothing")
    tag: str = Field(min_length=1, max_length=MAX_TAG, description="NFC UID or QR value")
    ts: int = Field(description="when scanned, epoch milliseconds (UTC)")
    result: Literal["ok", "abnormal"] = "ok"
    readings: dict[str, bool | int | float | str | None] = Field(default_factory=dict)
    note: str | None = Field(default=None, max_length=MAX_NOTE)


# The body's schema: one scan or 1..MAX_SCANS of them. The route reads the body as plain JSON
# and judges each scan alone (so one bad scan does not refuse the others); this schema is
# what OpenAPI shows, written out in full (no reference) to need no extra component.
_SCAN_SCHEMA = ScanIn.model_json_schema()
BODY_SCHEMA: dict[str, Any] = {"title": "Scans", "anyOf": [
    _SCAN_SCHEMA,
    {"type": "array", "items": _SCAN_SCHEMA, "minItems": 1, "maxItems": MAX_SCANS}]}
ScansBody = Annotated[dict[str, Any] | list[Any], Body(), WithJsonSchema(BODY_SCHEMA)]


class ScanResult(BaseModel):
    """What became of one scan of the body (by its index)."""

    index: int
    scan_id: UUID | None  # null when the item had no valid scan_id
    status: Literal["stored", "duplicate", "refused"]
    reason: str | None = None  # why it was refused


class ScansAccepted(BaseModel):
    """The answer to a scan upload: counts, and one result per scan in the body."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "site_id": "riverside", "guard_id": "g-wang", "received": 2, "stored": 1,
        "duplicates": 0, "refused": 1, "scan_ids": ["5b0f2f0e-8a57-4d55-9a1c-2f3c4e5d6a7b"],
        "results": [
            {"index": 0, "scan_id": "5b0f2f0e-8a57-4d55-9a1c-2f3c4e5d6a7b",
             "status": "stored", "reason": None},
            {"index": 1, "scan_id": None, "status": "refused",
             "reason": "scan_id is missing or not a UUID"}]}]})

    site_id: str
    guard_id: str
    received: int
    stored: int
    duplicates: int
    refused: int
    scan_ids: list[UUID]  # of the scans accepted (stored now or before)
    results: list[ScanResult]


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
    finding_id: int | None = Field(description=(
        "the finding an abnormal scan filed (hazard or equipment); null: none"))
    finding_kind: Literal["equipment", "hazard"] | None
    work_order_id: int | None = Field(description="the ticket the finding opened")


def _exists(conn: Db, sql: Any, params: tuple[str, ...]) -> bool:
    return conn.execute(sql, params).fetchone() is not None


def _scan_id(item: object) -> UUID | None:
    try:
        return UUID(item["scan_id"]) if isinstance(item, dict) else None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


@router.post("", response_model=ScansAccepted, status_code=202, openapi_extra={
    "requestBody": {"content": {"application/json": {"examples": {
            "one": {"summary": "one scan", "value": EXAMPLE_SCAN},
            "offline": {"summary": "an offline batch", "value": [EXAMPLE_SCAN]}}}}}})
def post_scans(conn: Db, principal: Scanner, clock: ClockDep,
               payload: ScansBody,
               site: IdParam = None, guard: IdParam = None) -> dict[str, Any]:
    """Accept one scan or an array (offline sync): each stored, a duplicate, or refused."""
    site_id = scoped_site(principal, site)
    if site_id is None:
        raise ApiError(422, "give ?site=", code="invalid")
    guard_id = guard or principal.guard_id
    if principal.guard_id is not None and guard_id != principal.guard_id:
        raise ApiError(403, f"this token may post scans only as guard {principal.guard_id!r}",
                       code="forbidden")
    if guard_id is None:
        raise ApiError(422, "give ?guard=", code="invalid")
    if not _exists(conn, "SELECT 1 FROM sites WHERE id = %s", (site_id,)):
        raise ApiError(404, f"site {site_id!r} not found")
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise ApiError(422, "no scans: give one scan or a non-empty array", code="invalid")
    if len(items) > MAX_SCANS:
        raise ApiError(422, f"at most {MAX_SCANS} scans in one request", code="invalid")
    now = clock()
    unknown = f"unknown guard {guard_id!r} of site {site_id!r}"
    if _exists(conn, "SELECT 1 FROM guards WHERE site_id = %s AND id = %s", (site_id, guard_id)):
        try:  # a single scan is accepted or refused whole; an array item by item
            scans, bad = parse_scans(site_id, guard_id, payload, now=now)
        except PayloadError as exc:
            raise ApiError(422, exc.reason, code="invalid") from exc
    elif isinstance(payload, list):
        scans, bad = [], [bad_item(i, item, unknown) for i, item in enumerate(items)]
    else:
        raise ApiError(422, unknown, code="invalid")
    stored = store_scans(conn, site_id, guard_id, scans, received_at=now)
    store_dead_letters(conn, [DeadLetter.of_item(f"caretaker/v1/{site_id}/guards/{guard_id}/scans",
                                                 b, datetime_to_ms(now)) for b in bad],
                       source="http")
    results = _results(items, set(stored), {b.index: b.reason for b in bad})
    counts = {status: sum(r["status"] == status for r in results)
              for status in ("stored", "duplicate", "refused")}
    return {"site_id": site_id, "guard_id": guard_id, "received": len(items),
            "stored": counts["stored"], "duplicates": counts["duplicate"],
            "refused": counts["refused"],
            "scan_ids": [r["scan_id"] for r in results if r["status"] != "refused"],
            "results": results}


def _results(items: list[Any], stored: set[UUID], refused: dict[int, str]
             ) -> list[dict[str, Any]]:
    """One result per item: refused (why), stored now, or a duplicate of a stored scan_id."""
    results: list[dict[str, Any]] = []
    seen: set[UUID | None] = set()
    for index, item in enumerate(items):
        scan_id = _scan_id(item)
        if index in refused:
            results.append({"index": index, "scan_id": scan_id, "status": "refused",
                            "reason": refused[index]})
            continue
        new = scan_id in stored and scan_id not in seen  # the first of a repeated id is new
        seen.add(scan_id)
        results.append({"index": index, "scan_id": scan_id,
                        "status": "stored" if new else "duplicate", "reason": None})
    return results


@router.get("", response_model=CursorPage[ScanPublic])
def list_scans(conn: Db, principal: Reader, page: PagingDep, site: IdParam = None,
               guard: IdParam = None, disposition: Disposition | None = None,
               tag: Annotated[str | None, Query(max_length=MAX_TAG, pattern=r"^[^\x00]*$")
                              ] = None, since: When | None = None,
               until: When | None = None,
               result: Annotated[ResultFilter | None, Query(description=(
                   "abnormal: what guards flagged; ok (or normal): the others"))] = None,
               cursor: CursorParam = None) -> dict[str, Any]:
    """Scans with their disposition (e.g. ?disposition=unknown_tag, ?result=abnormal), newest
    first.

    Paged by ?cursor= (each answer's next_cursor; a deep page costs what the first does) or
    by ?offset=. `total` is exact up to 10,000 matches and the planner's estimate beyond
    (then total_exact is false): scans is a hypertable.
    """
    found = queries.list_scans(
        conn, scope=scoped_site(principal, site), guard=own_guard(principal), site=site,
        guard_id=guard, disposition=disposition, tag=tag, since=since, until=until,
        limit=page.limit, offset=page.offset, cursor=cursor,
        result="ok" if result == "normal" else result)
    return cursor_answer(page, found)
