"""Rules: the equipment conditions that raise alarms; list, read, create, change, disable."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, Reader, check_site, require, scoped_site
from api.errors import not_found
from api.resource import Ident, Page, PagingDep, check_write_site, refusals
from caretaker.tokens import Principal
from rules import catalog
from rules.model import RuleError

router = APIRouter(prefix="/rules", tags=["rules"])

Editor = Annotated[Principal, Depends(require("supervisor"))]
Kind = Literal["threshold", "count", "offline", "rate"]
Severity = Literal["critical", "major", "minor", "warning"]


class RuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site_id: Ident
    id: Ident
    name: str | None = None
    kind: Kind = "threshold"
    metric: str | None = None
    severity: Severity = "major"
    enabled: bool = True
    device_type: Ident | None = None
    device: Ident | None = None
    params: dict[str, Any] = Field(default_factory=dict, description=(
        "op, threshold, clear, for, clear_for, count, clear_count, window, timeout, lwt"))
    inhibits: dict[str, Any] | list[str] | None = None
    description: str | None = None


class RuleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    metric: str | None = None
    severity: Severity | None = None
    enabled: bool | None = None
    device_type: Ident | None = None
    device: Ident | None = None
    params: dict[str, Any] | None = None
    inhibits: dict[str, Any] | list[str] | None = None
    description: str | None = None


class RulePublic(BaseModel):
    site_id: str
    id: str
    name: str
    kind: str
    metric: str | None
    enabled: bool
    severity: str
    device_type: str | None
    device_id: str | None
    params: dict[str, Any]
    inhibits: dict[str, Any] | None
    description: str | None
    created_at: datetime
    updated_at: datetime


@router.get("", response_model=Page[RulePublic])
def list_rules(conn: Db, principal: Reader, page: PagingDep, site: str | None = None,
               kind: Kind | None = None, metric: str | None = None,
               enabled: bool | None = None, severity: Severity | None = None
               ) -> dict[str, Any]:
    """Rules, by site and id."""
    items, total = catalog.list_rules(
        conn, filters={"site": site, "kind": kind, "metric": metric, "enabled": enabled,
                       "severity": severity},
        scope=scoped_site(principal, site), limit=page.limit, offset=page.offset)
    return page.answer(items, total)


@router.get("/{site}/{rule_id}", response_model=RulePublic)
def get_rule(site: str, rule_id: str, conn: Db, principal: Reader) -> dict[str, Any]:
    """One rule."""
    check_site(principal, site)
    row = catalog.get_rule(conn, site, rule_id)
    if row is None:
        raise not_found(f"rule {rule_id!r}")
    return row


@router.post("", response_model=RulePublic, status_code=201)
def create_rule(body: RuleCreate, conn: Db, principal: Editor, clock: ClockDep) -> dict[str, Any]:
    """Add a rule to a site."""
    check_write_site(principal, body.site_id)
    spec = body.model_dump(exclude={"site_id"}, exclude_none=True)
    with refusals(RuleError):
        return catalog.create_rule(conn, body.site_id, spec, now=clock())


@router.patch("/{site}/{rule_id}", response_model=RulePublic)
def update_rule(site: str, rule_id: str, body: RuleUpdate, conn: Db, principal: Editor,
                clock: ClockDep) -> dict[str, Any]:
    """Change a rule (thresholds, hold times, severity, scope, enabled)."""
    check_site(principal, site)
    with refusals(RuleError):
        return catalog.update_rule(conn, site, rule_id, body.model_dump(exclude_unset=True),
                                   now=clock())


@router.post("/{site}/{rule_id}/disable", response_model=RulePublic)
def disable_rule(site: str, rule_id: str, conn: Db, principal: Editor,
                 clock: ClockDep) -> dict[str, Any]:
    """Stop evaluating a rule (its open alarms stay until cleared)."""
    check_site(principal, site)
    with refusals(RuleError):
        return catalog.update_rule(conn, site, rule_id, {"enabled": False}, now=clock())


@router.post("/{site}/{rule_id}/enable", response_model=RulePublic)
def enable_rule(site: str, rule_id: str, conn: Db, principal: Editor,
                clock: ClockDep) -> dict[str, Any]:
    """Evaluate a disabled rule again."""
    check_site(principal, site)
    with refusals(RuleError):
        return catalog.update_rule(conn, site, rule_id, {"enabled": True}, now=clock())
