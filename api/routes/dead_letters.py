"""Dead letters: what the ingest could not use, for operators to inspect.

The list shows no payloads (one may be megabytes); `GET /dead-letters/{id}/payload` returns
one, cut at the `dead_letter_payload_max` setting (64 KiB by default) and saying so.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict

from api.deps import Db, require, scoped_site
from api.resource import CursorPage, CursorParam, PagingDep, cursor_answer
from caretaker.ids import IDENT_PATTERN
from caretaker.tokens import Principal
from ingest import readback

router = APIRouter(prefix="/dead-letters", tags=["ingest"])

Operator = Annotated[Principal, Depends(require("engineer", "supervisor"))]
MAX_ID = 2**63 - 1


class DeadLetterPublic(BaseModel):
    """A refused message (or one item of its array), without its payload."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 17, "received_at": "2026-11-23T07:50:00Z", "last_received_at": "2026-11-23T08:10:00Z",
        "count": 3, "source": "mqtt", "topic": "caretaker/v1/riverside/devices/pump-1/telemetry",
        "item": 4, "reason": "item 4: timestamp 900000000000 is before 2000", "size": 52}]})

    id: int
    received_at: datetime  # first received
    last_received_at: datetime
    count: int  # times received: a redelivered message counts here, not as a new row
    source: str  # mqtt, http, rules
    topic: str
    item: int | None  # index of the refused item of an array; null: the whole message
    reason: str
    size: int  # bytes of the payload


class DeadLetterPayload(BaseModel):
    """One dead letter's raw bytes, cut at the configured maximum."""

    id: int
    size: int  # bytes of the whole payload
    truncated: bool  # true when only the first `returned` bytes are given
    returned: int
    payload_base64: str  # the returned bytes, exactly
    payload_text: str  # the same decoded as UTF-8, undecodable bytes replaced


@router.get("", response_model=CursorPage[DeadLetterPublic])
def list_dead_letters(conn: Db, principal: Operator, page: PagingDep,
                      site: Annotated[str | None, Query(pattern=IDENT_PATTERN)] = None,
                      cursor: CursorParam = None) -> dict[str, Any]:
    """Refused messages, most recently received first (of one site's topics with ?site=).

    Paged by ?cursor= (each answer's next_cursor) or by ?offset=. `total` is exact up to
    10,000 matches and the planner's estimate beyond (then total_exact is false).
    """
    found = readback.dead_letters(conn, site=scoped_site(principal, site), limit=page.limit,
                                  offset=page.offset, cursor=cursor)
    return cursor_answer(page, found)


@router.get("/{dead_letter_id}/payload", response_model=DeadLetterPayload)
def get_dead_letter_payload(conn: Db, principal: Operator, request: Request,
                            dead_letter_id: Annotated[int, Path(ge=1, le=MAX_ID)]
                            ) -> dict[str, Any]:
    """One dead letter's payload, at most `dead_letter_payload_max` bytes of it."""
    cap = request.app.state.settings.dead_letter_payload_max
    found = readback.dead_letter_payload(conn, dead_letter_id, site=scoped_site(principal, None),
                                         cap=cap)
    raw: bytes = found["payload"]
    return {"id": found["id"], "size": found["size"], "truncated": found["truncated"],
            "returned": len(raw), "payload_base64": base64.b64encode(raw).decode("ascii"),
            "payload_text": raw.decode("utf-8", "replace")}
