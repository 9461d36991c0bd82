"""A hazard scan's photo, sent by the phone once the scan is synced (rules/patrol/photos.py)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from api.deps import ClockDep, Db, require, scoped_site
from api.errors import ApiError
from api.patrol import own_guard
from api.routes.attachments import IMAGES, AttachmentPublic
from caretaker.tokens import Principal
from rules.patrol import photos

router = APIRouter(prefix="/scans", tags=["patrol"])
Scanner = Annotated[Principal, Depends(require("supervisor", "engineer", "guard"))]


async def raw_body(request: Request) -> bytes:
    """The request's body as it came (read on the event loop, within the body-size limit)."""
    return await request.body()


@router.put("/{scan_id}/photo", response_model=AttachmentPublic, status_code=201,
            openapi_extra={"requestBody": {"required": True, "content": IMAGES}},
            responses={200: {"model": AttachmentPublic,
                             "description": "The photo was attached already"}})
def put_scan_photo(scan_id: UUID, request: Request, response: Response, conn: Db,
                   principal: Scanner, clock: ClockDep,
                   data: Annotated[bytes, Depends(raw_body)]) -> dict[str, Any]:
    """Attach the photo of an abnormal scan (the body: a JPEG, PNG or WebP) to the work
    order it opened: 201, or 200 when it was attached already (sending again is safe); 409
    `not_yet` while the scan's ticket is not open yet (try again shortly)."""
    if not data:
        raise ApiError(422, "the body must be the photo (JPEG, PNG or WebP)", code="invalid")
    found, new = photos.attach(
        conn, scan_id, data=data, declared_type=request.headers.get("content-type"),
        scope=scoped_site(principal, None), guard=own_guard(principal), actor=principal.actor,
        now=clock(), max_bytes=request.app.state.settings.attachment_max_bytes)
    if not new:
        response.status_code = 200
    return found
