"""The site file's `forecast:` section: which threshold rules are forecast, how far, how sure.

    forecast:
      horizon: 7d            # warn when the crossing is expected within this
      window: 5d             # hourly values the trend is fitted on
      min_history: 2d        # no estimate from less than this
      min_confidence: 0.99   # warn at this probability of a crossing within the horizon
      withdraw_below: 0.5    # withdraw the ticket when the probability falls below this
      severity: minor        # of the preventive work order
      every: 1h              # how often each device's estimate is recomputed
      rules: [tank-level-low, {rule: pump-vibration, level: major}]   # or '*': every one

Only threshold rules with an ordering op (>, >=, <, <=) can be forecast; a rule with levels
is forecast at its least severe level unless `level` names another.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from caretaker.durations import Duration
from caretaker.errors import Invalid
from caretaker.ids import Ident
from caretaker.severity import Severity
from caretaker.site_config import problems


class ForecastError(Invalid):
    """A forecast section that cannot be used; the message names the field."""


class Watched(BaseModel):
    """One forecast rule: its id and, for a rule with levels, which level."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Ident
    level: Severity | None = Field(default=None, description=(
        "the level of a rule with levels to forecast (default its least severe)"))


class ForecastSpec(BaseModel):
    """The written section, defaults filled in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    horizon: Duration = Field(default=timedelta(days=7), description=(
        "warn when the threshold is expected to be crossed within this"))
    window: Duration = Field(default=timedelta(days=5), description=(
        "the trend is fitted on the hourly values of this much history"))
    min_history: Duration = Field(default=timedelta(days=2), description=(
        "no estimate from less history than this"))
    min_confidence: float = Field(default=0.99, gt=0.5, lt=1.0, description=(
        "warn when the probability of a crossing within the horizon reaches this"))
    withdraw_below: float = Field(default=0.5, ge=0.0, lt=1.0, description=(
        "withdraw (cancel) the ticket when that probability falls below this"))
    severity: Severity = Field(default="minor", description="the preventive work order's")
    every: Duration = Field(default=timedelta(hours=1), description=(
        "how often each device's estimate is recomputed"))
    rules: Literal["*"] | list[Ident | Watched] = Field(default_factory=list, description=(
        "the threshold rules to forecast: ids, {rule, level}, or '*' for every one"))

    @model_validator(mode="after")
    def _check(self) -> ForecastSpec:
        if self.withdraw_below >= self.min_confidence:
            raise ValueError("withdraw_below must be less than min_confidence")
        if self.window < timedelta(days=2) or self.min_history < timedelta(days=1):
            raise ValueError("window must be 2d or more and min_history 1d or more "
                             "(a day's cycle is compared with the next day's)")
        if self.min_history > self.window:
            raise ValueError("min_history must not be longer than window")
        if self.horizon <= timedelta(0) or self.every <= timedelta(0):
            raise ValueError("horizon and every must be positive")
        return self

    def watched(self, rule_ids: list[str]) -> dict[str, Severity | None]:
        """The forecast rules among these ids, each with the level asked for (None: default)."""
        if self.rules == "*":
            return dict.fromkeys(rule_ids)
        out: dict[str, Severity | None] = {}
        for item in self.rules:
            rule, level = (item, None) if isinstance(item, str) else (item.rule, item.level)
            if rule in rule_ids:
                out[rule] = level
        return out

    def stored(self) -> dict[str, Any]:
        """The JSON the `forecast_settings` table keeps (only what was written)."""
        return self.model_dump(mode="json", exclude_unset=True)


def parse_spec(spec: Any) -> ForecastSpec:
    """A spec from its YAML/JSON shape; ForecastError naming the bad field."""
    try:
        return ForecastSpec.model_validate(spec or {})
    except ValidationError as exc:
        raise ForecastError("forecast: " + "; ".join(problems(exc, empty=""))) from None


def load_spec(conn: psycopg.Connection[Any], site_id: str) -> ForecastSpec:
    """The site's forecast settings (defaults, forecasting nothing, when it has none)."""
    row = conn.execute("SELECT spec FROM forecast_settings WHERE site_id = %s",
                       (site_id,)).fetchone()
    return parse_spec(row["spec"] if row else None)


def save_spec(conn: psycopg.Connection[Any], site_id: str, spec: ForecastSpec, *,
              now: datetime) -> None:
    """Store a site's forecast settings (site file section loader)."""
    conn.execute(
        "INSERT INTO forecast_settings (site_id, spec, updated_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (site_id) DO UPDATE SET spec = EXCLUDED.spec,"
        " updated_at = EXCLUDED.updated_at WHERE forecast_settings.spec <> EXCLUDED.spec",
        (site_id, Jsonb(spec.stored()), now))
