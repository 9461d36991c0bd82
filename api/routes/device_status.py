"""Devices' status history: every online/offline change the ingest recorded, newest first.

`GET /device-status` (?site=, ?device=, ?status=, ?since=, ?until=) is paged by ?cursor=,
since device_status is a hypertable that grows with every outage of every device.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from api.deps import Db, Reader, scoped_site
from api.resource import CursorPage, CursorParam, PagingDep, When, cursor_answer
from caretaker.ids import IDENT_PATTERN
from ingest import readback

router = APIRouter(prefix="/device-status", tags=["devices"])

IdParam = Annotated[str | None, Query(pattern=IDENT_PATTERN)]


class StatusChange(BaseModel):
    """One change of a device's online state."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "time": "2026-11-23T07:50:00Z", "site_id": "riverside", "device_id": "pump-0001",
        "status": "offline", "source": "lwt"}]})

    time: datetime
    site_id: str
    device_id: str
    status: Literal["online", "offline"]
    # status: the device's own message; lwt: its Last Will; planned: an announced stop;
    # timeout: no data; telemetry: back online by sending data
    source: str


@router.get("", response_model=CursorPage[StatusChange])
def list_device_status(conn: Db, principal: Reader, page: PagingDep, site: IdParam = None,
                       device: IdParam = None,
                       status: Literal["online", "offline"] | None = None,
                       since: When | None = None, until: When | None = None,
                       cursor: CursorParam = None) -> dict[str, Any]:
    """Devices going online and offline, newest first (e.g. ?site=riverside&status=offline).

    Paged by ?cursor= (each answer's next_cursor; a deep page costs what the first does) or
    by ?offset=. `total` is exact up to 10,000 matches and the planner's estimate beyond
    (then total_exact is false).
    """
    found = readback.status_history(conn, site=scoped_site(principal, site), device=device,
                                    status=status, since=since, until=until, limit=page.limit,
                                    offset=page.offset, cursor=cursor)
    return cursor_answer(page, found)
