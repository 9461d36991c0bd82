"""Shift handover sheets (交接班): list, read as JSON, HTML or PDF, and sign."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, require, scoped_site
from api.resource import Page, PagingDep
from api.routes.reports import HTML, JSON, PDF, ReportReader, document, negotiate
from caretaker.site_config import NO_NUL
from caretaker.tokens import Principal
from reports import handover
from reports.weekly import site_of

router = APIRouter(prefix="/handovers", tags=["handovers"])

Signer = Annotated[Principal, Depends(require("supervisor", "engineer"))]
DOCUMENT: dict[int | str, dict[str, Any]] = {
    200: {"content": {PDF: {}, HTML: {}}, "description": "the sheet"}}


class Signature(BaseModel):
    by: str | None
    at: datetime | None
    note: str | None


class HandoverPublic(BaseModel):
    id: int
    site_id: str
    shift_start: datetime
    shift_end: datetime
    language: str
    created_at: datetime
    sign_by: datetime
    state: Literal["awaiting", "signed", "unsigned_late"]
    outgoing: Signature
    incoming: Signature
    unsigned_notified_at: datetime | None
    content: dict[str, Any] = Field(description="devices_offline, active_alarms, "
                                    "open_tickets, inspections_done, inspections_due, "
                                    "out_of_range, findings, notes")
    links: dict[str, str]


class HandoverSign(BaseModel):
    """A signature: which side the signer takes over or hands over, with a note."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"side": "outgoing", "note": "pump 2 vibrating, watch it; chiller 1 off for service"},
        {"side": "incoming", "note": "received; pump 2 checked at 20:15"}]})

    side: Literal["outgoing", "incoming"]
    note: str | None = Field(default=None, max_length=2000, pattern=NO_NUL)


def _public(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    base = f"/api/v1/handovers/{row['id']}"
    sides = {side: {"by": row[f"{side}_by"], "at": row[f"{side}_at"],
                    "note": row[f"{side}_note"]} for side in handover.SIDES}
    return {**row, **sides, "state": handover.state_of(row, now),
            "links": {"pdf": base + ".pdf", "html": base + ".html"}}


def _document(conn: Any, row: dict[str, Any], media: str) -> Response:
    site = site_of(conn, row["site_id"])
    name = f"handover-{row['site_id']}-{row['id']}"
    if media == PDF:
        return document(handover.to_pdf(row, site.name, site.timezone), PDF, name + ".pdf")
    return document(handover.to_html(row, site.name, site.timezone).encode(), HTML,
                    name + ".html")


@router.get("", response_model=Page[HandoverPublic])
def list_handovers(conn: Db, principal: ReportReader, page: PagingDep, clock: ClockDep,
                   site: str | None = None) -> dict[str, Any]:
    """Handover sheets, the latest shift change first."""
    items, total = handover.list_sheets(conn, site=site, scope=scoped_site(principal, site),
                                        limit=page.limit, offset=page.offset)
    now = clock()
    return page.answer([_public(r, now) for r in items], total)


@router.get("/{handover_id}.pdf", response_class=Response, responses=DOCUMENT)
def get_handover_pdf(handover_id: int, conn: Db, principal: ReportReader) -> Response:
    """A sheet as PDF (with its signatures so far)."""
    return _document(conn, handover.get(conn, handover_id, scope=principal.site_id), PDF)


@router.get("/{handover_id}.html", response_class=Response, responses=DOCUMENT)
def get_handover_html(handover_id: int, conn: Db, principal: ReportReader) -> Response:
    """A sheet as an HTML page."""
    return _document(conn, handover.get(conn, handover_id, scope=principal.site_id), HTML)


@router.get("/{handover_id}", response_model=HandoverPublic,
            responses={200: {"content": {PDF: {}, HTML: {}}}})
def get_handover(handover_id: int, conn: Db, principal: ReportReader, clock: ClockDep,
                 accept: Annotated[str | None, Header()] = None) -> Any:
    """A sheet: JSON (the default), HTML or PDF, as `Accept` asks."""
    row = handover.get(conn, handover_id, scope=principal.site_id)
    media = negotiate(accept, (JSON, HTML, PDF), JSON)
    if media == JSON:
        return _public(row, clock())
    return _document(conn, row, media)


@router.post("/{handover_id}/sign", response_model=HandoverPublic)
def sign_handover(handover_id: int, body: HandoverSign, conn: Db, principal: Signer,
                  clock: ClockDep) -> dict[str, Any]:
    """Sign a sheet as the outgoing or the incoming engineer (one person, one side)."""
    now = clock()
    row = handover.sign(conn, handover_id, side=body.side, actor=principal.actor,
                        token_id=principal.token_id, note=body.note, now=now,
                        scope=principal.site_id)
    return _public(row, now)
