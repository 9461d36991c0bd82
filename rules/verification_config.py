"""A site's `verification:` section: which alarms send a guard to look, by when, and the map.

    verification:
      within: 10m                  # the deadline after the alarm (default 10m)
      on_duty: 1h                  # a guard who scanned this recently is on duty (default 1h)
      rules:                       # the alarms that ask for a look
        - {rule: door-forced, checkpoint: cp-pump-room-door}
        - {rule: pump-room-flood, within: 5m}   # checkpoint: the device's, or one in its zone
      distances:                   # walking metres between checkpoints; paths add up
        - [cp-gate-main, cp-carpark-b1, 80]
      adjacent_zones:              # the fallback where no distance path joins two checkpoints
        - [car-park, pump-room]
      zone_step: 100               # metres a zone hop counts for (default 100)
      escalate: {to: [supervisor], severity: major}

A guard is on duty while a patrol run of theirs (or of their post) is under way, or for
`on_duty` after their last scan. Where to look: the rule entry's `checkpoint`, else a
checkpoint on the alarm's device, else a checkpoint in the device's zone (patrol points
first). Nobody verifying by the deadline marks the verification not_verified, tells
`escalate.to` (audiences or receiver names) and opens a work order (source `verification`)
of `escalate.severity`; a confirmed result opens one too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import psycopg
from psycopg.types.json import Jsonb
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from caretaker.durations import Duration
from caretaker.errors import Invalid
from caretaker.ids import Ident
from caretaker.site_config import problems


class VerificationConfigError(Invalid):
    """A verification section that cannot be used; the message names the field."""


def _entry(value: Any) -> Any:
    return {"rule": value} if isinstance(value, str) else value


class VerifyRule(BaseModel):
    """An alarm rule whose alarms send a guard: where to look and (optionally) by when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Ident
    checkpoint: Ident | None = Field(default=None, description=(
        "where to look (default: the device's checkpoint, or one in its zone)"))
    within: Duration | None = Field(default=None, description="this rule's deadline")


class Escalate(BaseModel):
    """Who hears of an alarm nobody verified in time, and the work order's severity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    to: list[Ident] = Field(default_factory=lambda: ["supervisor"], min_length=1,
                            max_length=20)
    severity: Literal["critical", "major", "minor"] = "major"


Positive = Annotated[float, Field(gt=0, le=100_000)]


class VerificationSpec(BaseModel):
    """The written section: the rules, the deadline, the map and the escalation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Annotated[VerifyRule, BeforeValidator(_entry)]] = Field(
        default_factory=list, max_length=200)
    within: Duration = Field(default=timedelta(minutes=10), description="the deadline")
    on_duty: Duration = Field(default=timedelta(hours=1), description=(
        "a guard who scanned this recently counts as on duty"))
    distances: list[tuple[Ident, Ident, Positive]] = Field(default_factory=list,
                                                          max_length=5000)
    adjacent_zones: list[tuple[Ident, Ident]] = Field(default_factory=list, max_length=1000)
    zone_step: Positive = 100.0
    escalate: Escalate = Field(default_factory=Escalate)

    @model_validator(mode="after")
    def _consistent(self) -> VerificationSpec:
        if self.within <= timedelta(0):
            raise ValueError("within must be more than 0")
        for r in self.rules:
            if r.within is not None and r.within <= timedelta(0):
                raise ValueError(f"rules: {r.rule}: within must be more than 0")
        ids = [r.rule for r in self.rules]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"rules: a rule appears twice: {', '.join(twice)}")
        pairs: set[frozenset[str]] = set()
        for a, b, _ in self.distances:
            if a == b:
                raise ValueError(f"distances: {a} to itself")
            if frozenset((a, b)) in pairs:
                raise ValueError(f"distances: {a} and {b} are given twice")
            pairs.add(frozenset((a, b)))
        for a, b in self.adjacent_zones:
            if a == b:
                raise ValueError(f"adjacent_zones: {a} next to itself")
        return self

    def rule(self, rule_id: str) -> VerifyRule | None:
        """The entry of this alarm rule, if its alarms ask for a look."""
        return next((r for r in self.rules if r.rule == rule_id), None)

    def deadline(self, entry: VerifyRule) -> timedelta:
        """How long a guard has to verify an alarm of this entry's rule."""
        return entry.within if entry.within is not None else self.within

    def stored(self) -> dict[str, Any]:
        """The JSON the `verification_settings` table keeps."""
        return self.model_dump(mode="json")


def parse_spec(value: Any) -> VerificationSpec:
    """A section from its YAML/JSON shape; VerificationConfigError naming the bad field."""
    try:
        return VerificationSpec.model_validate(value or {})
    except ValidationError as exc:
        raise VerificationConfigError(
            "verification: " + "; ".join(problems(exc, empty=""))) from None


def _missing(conn: psycopg.Connection[Any], table: str, site_id: str,
             ids: set[str]) -> list[str]:
    if not ids:
        return []
    query = {"rules": "SELECT id FROM rules WHERE site_id = %s AND id = ANY(%s)",
             "checkpoints": "SELECT id FROM checkpoints WHERE site_id = %s AND id = ANY(%s)",
             "zones": "SELECT id FROM zones WHERE site_id = %s AND id = ANY(%s)"}[table]
    found = {r["id"] for r in conn.execute(query, (site_id, sorted(ids)))}
    return sorted(ids - found)


def save_spec(conn: psycopg.Connection[Any], site_id: str, spec: VerificationSpec, *,
              now: datetime) -> None:
    """Check the section's references against the site and store it (site-file loader)."""
    wanted = {
        "rules": {r.rule for r in spec.rules},
        "checkpoints": {r.checkpoint for r in spec.rules if r.checkpoint}
        | {c for a, b, _ in spec.distances for c in (a, b)},
        "zones": {z for pair in spec.adjacent_zones for z in pair},
    }
    bad = [f"unknown {table[:-1]}(s) {', '.join(missing)}"
           for table, ids in wanted.items()
           if (missing := _missing(conn, table, site_id, ids))]
    if bad:
        raise VerificationConfigError(f"site {site_id}: " + "; ".join(bad))
    conn.execute(
        "INSERT INTO verification_settings (site_id, spec, updated_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (site_id) DO UPDATE SET spec = EXCLUDED.spec,"
        " updated_at = EXCLUDED.updated_at WHERE verification_settings.spec <> EXCLUDED.spec",
        (site_id, Jsonb(spec.stored()), now))


def load_spec(conn: psycopg.Connection[Any], site_id: str) -> VerificationSpec | None:
    """The site's section (None when it has none)."""
    row = conn.execute("SELECT spec FROM verification_settings WHERE site_id = %s",
                       (site_id,)).fetchone()
    return parse_spec(row["spec"]) if row else None
