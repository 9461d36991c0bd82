"""Dead letters: messages the ingest could not use, for operators to inspect."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from api.deps import Db, require, scoped_site
from api.resource import Page, PagingDep
from caretaker.tokens import Principal
from ingest import readback

router = APIRouter(prefix="/dead-letters", tags=["ingest"])

Operator = Annotated[Principal, Depends(require("engineer", "supervisor"))]


class DeadLetterPublic(BaseModel):
    id: int
    received_at: datetime
    source: str
    topic: str
    reason: str
    size: int
    payload_text: str  # the raw bytes decoded as UTF-8, undecodable bytes replaced, cut at 4 KiB
    payload_base64: str  # the raw bytes, complete


@router.get("", response_model=Page[DeadLetterPublic])
def list_dead_letters(conn: Db, principal: Operator, page: PagingDep,
                      site: str | None = None) -> dict[str, Any]:
    """Refused messages, newest first (of one site's topics with ?site=)."""
    items, total = readback.dead_letters(conn, site=scoped_site(principal, site),
                                         limit=page.limit, offset=page.offset)
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}
