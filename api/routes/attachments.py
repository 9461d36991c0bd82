"""Attachments: photos before and after a repair, uploaded with a ticket and served back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Path, Request, Response, UploadFile
from pydantic import BaseModel

from api.deps import ClockDep, Db, Reader, require
from api.errors import ApiError
from api.resource import Page, PagingDep
from caretaker.tokens import Principal
from tickets import attachments
from tickets.follow_ups import Kind

router = APIRouter(tags=["attachments"])

# Those who handle the ticket attach photos of the work; every reader of a ticket sees them.
Uploader = Annotated[Principal, Depends(require("frontdesk", "supervisor", "engineer"))]
TicketId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Phase = Literal["before", "after", "other"]
IMAGES = {t: {"schema": {"type": "string", "format": "binary"}} for t in attachments.TYPES}


class AttachmentPublic(BaseModel):
    id: int
    site_id: str
    work_order_id: int | None
    complaint_id: int | None
    phase: str
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: datetime


def _upload(kind: Kind, ticket_id: int, request: Request, file: UploadFile, phase: str,
            conn: Any, principal: Principal, now: datetime) -> dict[str, Any]:
    limit: int = request.app.state.settings.attachment_max_bytes
    data = file.file.read(limit + 1)
    try:
        return attachments.add(conn, kind, ticket_id, data=data, filename=file.filename,
                               declared_type=file.content_type, phase=phase,
                               actor=principal.actor, now=now, max_bytes=limit,
                               scope=principal.site_id)
    except attachments.TooLarge as exc:
        raise ApiError(413, exc.message, code="too_large") from None


@router.post("/work-orders/{wo_id}/attachments", response_model=AttachmentPublic,
             status_code=201)
def attach_to_work_order(wo_id: TicketId, request: Request, file: Annotated[UploadFile, File()],
                         phase: Annotated[Phase, Form()], conn: Db, principal: Uploader,
                         clock: ClockDep) -> dict[str, Any]:
    """Attach a photo to a work order: JPEG, PNG or WebP by its content (else 422,
    `unsupported_type`), up to the attachment-size setting (else 413)."""
    return _upload("work_order", wo_id, request, file, phase, conn, principal, clock())


@router.post("/complaints/{complaint_id}/attachments", response_model=AttachmentPublic,
             status_code=201)
def attach_to_complaint(complaint_id: TicketId, request: Request,
                        file: Annotated[UploadFile, File()], phase: Annotated[Phase, Form()],
                        conn: Db, principal: Uploader, clock: ClockDep) -> dict[str, Any]:
    """Attach a photo to a complaint: JPEG, PNG or WebP by its content (else 422,
    `unsupported_type`), up to the attachment-size setting (else 413)."""
    return _upload("complaint", complaint_id, request, file, phase, conn, principal, clock())


@router.get("/work-orders/{wo_id}/attachments", response_model=Page[AttachmentPublic])
def list_work_order_attachments(wo_id: TicketId, conn: Db, principal: Reader,
                                page: PagingDep) -> dict[str, Any]:
    """A work order's attachments (without their bytes), oldest first."""
    items, total = attachments.list_for(conn, "work_order", wo_id, scope=principal.site_id,
                                        limit=page.limit, offset=page.offset)
    return page.answer(items, total)


@router.get("/complaints/{complaint_id}/attachments", response_model=Page[AttachmentPublic])
def list_complaint_attachments(complaint_id: TicketId, conn: Db, principal: Reader,
                               page: PagingDep) -> dict[str, Any]:
    """A complaint's attachments (without their bytes), oldest first."""
    items, total = attachments.list_for(conn, "complaint", complaint_id,
                                        scope=principal.site_id, limit=page.limit,
                                        offset=page.offset)
    return page.answer(items, total)


@router.get("/attachments/{attachment_id}", response_class=Response,
            responses={200: {"content": IMAGES, "description": "The photo, byte for byte"}})
def get_attachment(attachment_id: TicketId, conn: Db, principal: Reader) -> Response:
    """An attachment's bytes, to those who may read its ticket, in its site."""
    found = attachments.fetch(conn, attachment_id, scope=principal.site_id)
    name = found["filename"]
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    return Response(
        content=bytes(found["data"]), media_type=found["content_type"],
        headers={
            "Content-Disposition": f"inline; filename=\"{ascii_name}\"; "
                                   f"filename*=UTF-8''{quote(name, safe='')}",
            "ETag": f"\"{found['sha256']}\"",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=3600",
        })
