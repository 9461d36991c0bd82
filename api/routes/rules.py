"""Rules: the equipment conditions that raise alarms; list, read, create, change, disable.

A rule is written flat, its kind's parameters beside its scope and severity; each kind
(threshold, count, offline, rate) is its own schema in the OpenAPI document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, Reader, check_site, require, scoped_site
from api.resource import Page, PagingDep, check_write_site
from caretaker.durations import Duration
from caretaker.errors import Invalid
from caretaker.ids import Ident
from caretaker.severity import Severity
from caretaker.site_config import ShortText, Text
from caretaker.tokens import Principal
from rules import catalog
from rules.catalog import RuleNotFound
from rules.model import (
    MAX_LEVELS,
    CountRule,
    Inhibits,
    Level,
    OfflineRule,
    Op,
    RateRule,
    Rule,
    ThresholdRule,
)
from rules.model import Metric as RuleMetric

# A PATCH field's default: absent leaves the value, an explicit null is refused.
UNSET: Any = None

router = APIRouter(prefix="/rules", tags=["rules"])

Editor = Annotated[Principal, Depends(require("supervisor"))]
Kind = Literal["threshold", "count", "offline", "rate"]
Filter = Annotated[Ident | None, Query()]
Metric = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[^\x00]*$")]


class RuleUpdate(BaseModel):
    """The fields of a rule to change (its kind stays); the result is validated as a whole."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: ShortText = Field(default=UNSET)
    severity: Severity = Field(default=UNSET)
    enabled: bool = Field(default=UNSET)
    metric: RuleMetric = Field(default=UNSET)
    device_type: Ident | None = None
    device: Ident | None = None
    inhibits: Inhibits | list[Ident] | Literal["*"] | None = None
    description: Text | None = None
    op: Op = Field(default=UNSET)
    threshold: float = Field(default=UNSET, allow_inf_nan=False)
    clear: float | None = Field(default=UNSET, allow_inf_nan=False)
    for_: Duration = Field(default=UNSET, alias="for")
    clear_for: Duration = Field(default=UNSET)
    levels: list[Level] = Field(default=UNSET, min_length=1, max_length=MAX_LEVELS)
    count: int = Field(default=UNSET, ge=1, le=10_000)
    clear_count: int = Field(default=UNSET, ge=1, le=10_000)
    window: Duration = Field(default=UNSET)
    timeout: Duration = Field(default=UNSET)
    lwt: bool = Field(default=UNSET)


class _Stamps(BaseModel):
    created_at: datetime
    updated_at: datetime


class ThresholdRulePublic(ThresholdRule, _Stamps):
    pass


class CountRulePublic(CountRule, _Stamps):
    pass


class OfflineRulePublic(OfflineRule, _Stamps):
    pass


class RateRulePublic(RateRule, _Stamps):
    pass


RulePublic = Annotated[
    ThresholdRulePublic | CountRulePublic | OfflineRulePublic | RateRulePublic,
    Field(discriminator="kind"),
]


def _public(conn: Db, rule: Rule, stamps: dict[str, Any] | None = None) -> dict[str, Any]:
    stamps = stamps or catalog.stamps(conn, rule.site_id, rule.id)
    return {**rule.model_dump(by_alias=True), **stamps}


@router.get("", response_model=Page[RulePublic])
def list_rules(conn: Db, principal: Reader, page: PagingDep, site: Filter = None,
               kind: Kind | None = None, metric: Metric = None,
               enabled: bool | None = None, severity: Severity | None = None
               ) -> dict[str, Any]:
    """Rules, by site and id."""
    items, total = catalog.list_rules(
        conn, filters={"site": site, "kind": kind, "metric": metric, "enabled": enabled,
                       "severity": severity},
        scope=scoped_site(principal, site), limit=page.limit, offset=page.offset)
    return page.answer([_public(conn, rule, stamps) for rule, stamps in items], total)


@router.get("/{site}/{rule_id}", response_model=RulePublic)
def get_rule(site: Ident, rule_id: Ident, conn: Db, principal: Reader) -> dict[str, Any]:
    """One rule."""
    check_site(principal, site)
    rule = catalog.get_rule(conn, site, rule_id)
    if rule is None:
        raise RuleNotFound(f"rule {rule_id!r} not found")
    return _public(conn, rule)


@router.post("", response_model=RulePublic, status_code=201)
def create_rule(body: Annotated[Rule, Body()], conn: Db, principal: Editor,
                clock: ClockDep) -> dict[str, Any]:
    """Add a rule to a site (`site_id` required); `kind` (default threshold) picks its schema."""
    if not body.site_id:
        raise Invalid("site_id: required")
    check_write_site(principal, body.site_id)
    return _public(conn, catalog.create_rule(conn, body, now=clock()))


@router.patch("/{site}/{rule_id}", response_model=RulePublic)
def update_rule(site: Ident, rule_id: Ident, body: RuleUpdate, conn: Db, principal: Editor,
                clock: ClockDep) -> dict[str, Any]:
    """Change a rule (thresholds or levels, hold times, severity, scope, enabled).

    Giving `levels` replaces `threshold`, `clear` and `severity` (the worst level's), and
    giving `threshold` to a rule with levels makes it a single-level rule again.
    """
    check_site(principal, site)
    changes = body.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return _public(conn, catalog.update_rule(conn, site, rule_id, changes, now=clock()))


@router.post("/{site}/{rule_id}/disable", response_model=RulePublic)
def disable_rule(site: Ident, rule_id: Ident, conn: Db, principal: Editor,
                 clock: ClockDep) -> dict[str, Any]:
    """Stop evaluating a rule (its open alarms stay until cleared)."""
    check_site(principal, site)
    return _public(conn, catalog.update_rule(conn, site, rule_id, {"enabled": False},
                                             now=clock()))


@router.post("/{site}/{rule_id}/enable", response_model=RulePublic)
def enable_rule(site: Ident, rule_id: Ident, conn: Db, principal: Editor,
                clock: ClockDep) -> dict[str, Any]:
    """Evaluate a disabled rule again."""
    check_site(principal, site)
    return _public(conn, catalog.update_rule(conn, site, rule_id, {"enabled": True},
                                             now=clock()))
