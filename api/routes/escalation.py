"""A site's escalation ladder and notification receivers: read, and replaced by supervisors.

Validated by the same models as the site file's `escalation:` and `notifications:` sections.
Secrets are never answered: a robot URL's key, a DingTalk signing secret and an SMTP password
come back masked (********); sending a masked value back keeps the stored one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, check_site, require
from api.errors import not_found
from api.resource import check_write_site
from caretaker.tokens import Principal
from tickets.escalation import EscalationSpec, Rung, load_ladder, save_ladder
from tickets.notification_policy import (
    NotificationsSpec,
    load_spec,
    reach,
    save_spec,
    unmask,
)

router = APIRouter(prefix="/sites", tags=["notifications"])

# Receivers name staff addresses: not for guards' handhelds.
Viewer = Annotated[Principal, Depends(require("supervisor", "engineer", "frontdesk", "viewer"))]
Supervisor = Annotated[Principal, Depends(require("supervisor"))]


class LevelReach(BaseModel):
    """A rung of a ladder and the receivers it reaches today (empty: nobody hears it)."""

    level: int
    after: str
    who: list[str]
    channel: str | None
    receivers: list[str]


class Reach(BaseModel):
    work_orders: list[LevelReach]
    complaints: list[LevelReach]


class EscalationPublic(BaseModel):
    """A site's ladders (defaults filled in), its receivers (secrets masked), who is reached."""

    site: str
    escalation: EscalationSpec
    notifications: NotificationsSpec
    reach: Reach
    updated_at: datetime | None


class EscalationUpdate(BaseModel):
    """The sections to replace; a section left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    escalation: EscalationSpec | None = Field(default=None)
    notifications: NotificationsSpec | None = Field(default=None)


def _reach(levels: list[Rung], receivers: NotificationsSpec) -> list[dict[str, Any]]:
    return [{"level": lv.level, "after": lv.model_dump(mode="json")["after"], "who": lv.who,
             "channel": lv.channel, "receivers": reach(receivers, lv.who, lv.channel)}
            for lv in levels]


def _answer(conn: Db, site: str) -> dict[str, Any]:
    found = conn.execute(
        "SELECT s.id, n.updated_at FROM sites s LEFT JOIN notification_settings n"
        " ON n.site_id = s.id WHERE s.id = %s", (site,)).fetchone()
    if found is None:
        raise not_found(f"site {site!r}")
    ladder, receivers = load_ladder(conn, site), load_spec(conn, site)
    return {"site": site, "escalation": ladder.model_dump(mode="json"),
            "notifications": receivers.public(),
            "reach": {"work_orders": _reach(ladder.work_orders, receivers),
                      "complaints": _reach(ladder.complaints, receivers)},
            "updated_at": found["updated_at"]}


@router.get("/{site}/escalation", response_model=EscalationPublic)
def get_escalation(site: str, conn: Db, principal: Viewer) -> dict[str, Any]:
    """The site's escalation ladders and notification receivers (secrets masked)."""
    check_site(principal, site)
    return _answer(conn, site)


@router.put("/{site}/escalation", response_model=EscalationPublic)
def put_escalation(site: str, body: EscalationUpdate, conn: Db, principal: Supervisor,
                   clock: ClockDep) -> dict[str, Any]:
    """Replace the site's ladders and/or receivers (supervisors and admins)."""
    check_write_site(principal, site)
    if conn.execute("SELECT 1 FROM sites WHERE id = %s", (site,)).fetchone() is None:
        raise not_found(f"site {site!r}")
    now = clock()
    if body.escalation is not None:
        save_ladder(conn, site, body.escalation, now=now)
    if body.notifications is not None:
        save_spec(conn, site, unmask(body.notifications, load_spec(conn, site)), now=now)
    return _answer(conn, site)
