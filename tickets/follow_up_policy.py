"""A site's follow-up policy (回访): which tickets are visited, how soon, how many tries.

Defaults follow the centre's 业主回访作业指导书 (seed 004): paid special services (居家维修) and
complaints are visited 100 %, repair reports (报事报修: 公区维修, 整改, 设备, 其他) 90 % or more.
Site file section `follow_up_policy:`; every key optional.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import psycopg
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from caretaker.durations import Duration
from caretaker.errors import Invalid
from caretaker.site_config import problems

Category = Literal["公区维修", "居家维修", "整改", "设备", "其他"]
Source = Literal["alarm", "inspection", "patrol", "manual", "complaint"]
_MANUAL: Source = "manual"
Percent = Annotated[int, Field(ge=0, le=100)]

# 居家维修 is a paid special service (有偿特约服务); the others are repair reports (报事报修).
DEFAULT_RATES: dict[str, int] = {"居家维修": 100, "公区维修": 90, "整改": 90, "设备": 90,
                                 "其他": 90}


class FollowUpPolicyError(Invalid):
    """A follow-up policy that cannot be used; the message names the field."""


class FollowUpPolicy(BaseModel):
    """The written policy (site file `follow_up_policy:`), defaults filled in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rates: dict[Category, Percent] = Field(default_factory=dict, description=(
        "per work-order category, the share (%) of resolved tickets that must be visited; "
        "categories not named keep the default (居家维修 100, the others 90)"))
    complaints: Percent = Field(default=100, description=(
        "the share (%) of answered complaints that must be visited"))
    sources: list[Source] = Field(default_factory=lambda: [_MANUAL], description=(
        "work orders opened from these sources have someone to visit (a complaint's own "
        "work order is visited through the complaint)"))
    due_within: Duration = Field(default=timedelta(days=3), description=(
        "a visit is due from the ticket's resolution (a complaint's answer) and late after this"))
    retry_after: Duration = Field(default=timedelta(days=1), description=(
        "after an unreachable attempt, the next attempt is due this much later"))
    give_up_after: Duration = Field(default=timedelta(days=30), description=(
        "a ticket done longer ago than this leaves the queue unvisited (the KPI counts it)"))
    max_attempts: int = Field(default=3, ge=1, le=20, description=(
        "unreachable attempts after which the ticket leaves the queue"))
    dissatisfied_at_most: int = Field(default=2, ge=0, le=4, description=(
        "a reached visit with satisfaction at or below this sends the work back (返工); "
        "0: never"))

    def rate(self, category: str) -> int:
        """The share (%) of a work-order category's tickets to visit."""
        written: dict[str, int] = dict(self.rates.items())
        return written.get(category, DEFAULT_RATES.get(category, 90))

    def all_rates(self) -> dict[str, int]:
        """Every work-order category's share (%), defaults filled in."""
        return {c: self.rate(c) for c in DEFAULT_RATES}

    def dissatisfied(self, satisfaction: int | None) -> bool:
        """Whether a visit's satisfaction (1-5) sends the work back."""
        return satisfaction is not None and satisfaction <= self.dissatisfied_at_most

    def stored(self) -> dict[str, Any]:
        """The JSON the `follow_up_policies` table keeps (only what was written)."""
        return self.model_dump(mode="json", exclude_unset=True)


def picked(rank: int, percent: int) -> bool:
    """Whether the rank-th ticket (1, 2, ...) of a category is among the share to visit.

    The k-th is picked when ceil(k * percent / 100) grows at k: every prefix of the sequence
    has at least `percent` % picked, the skipped ones evenly spread (90 %: every 10th).
    The queue's SQL (tickets.follow_ups) computes the same in the database.
    """
    def ceil(k: int) -> int:
        return -(-k * percent // 100)

    return ceil(rank) > ceil(rank - 1)


def parse_policy(spec: Any) -> FollowUpPolicy:
    """A policy from its YAML/JSON shape; FollowUpPolicyError naming the bad field."""
    try:
        return FollowUpPolicy.model_validate(spec or {})
    except ValidationError as exc:
        raise FollowUpPolicyError(
            "follow_up_policy: " + "; ".join(problems(exc, empty=""))) from None


def load_policy(conn: psycopg.Connection[Any], site_id: str) -> FollowUpPolicy:
    """The site's follow-up policy (defaults when it has none)."""
    row = conn.execute("SELECT policy FROM follow_up_policies WHERE site_id = %s",
                       (site_id,)).fetchone()
    return parse_policy(row["policy"] if row else None)


def load_policies(conn: psycopg.Connection[Any], site_id: str | None
                  ) -> dict[str, FollowUpPolicy]:
    """The policy of one site, or of every site when `site_id` is None, by site id."""
    rows = conn.execute(
        "SELECT s.id, p.policy FROM sites s LEFT JOIN follow_up_policies p ON p.site_id = s.id"
        " WHERE %(site)s::text IS NULL OR s.id = %(site)s", {"site": site_id}).fetchall()
    return {r["id"]: parse_policy(r["policy"]) for r in rows}


def save_policy(conn: psycopg.Connection[Any], site_id: str, spec: FollowUpPolicy, *,
                now: datetime) -> None:
    """Store a site's follow-up policy (site file section loader)."""
    conn.execute(
        "INSERT INTO follow_up_policies (site_id, policy, updated_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (site_id) DO UPDATE SET policy = EXCLUDED.policy,"
        " updated_at = EXCLUDED.updated_at WHERE follow_up_policies.policy <> EXCLUDED.policy",
        (site_id, Jsonb(spec.stored()), now))
