"""Rules, readings and decisions as values: each rule kind a pydantic model with typed parameters.

A rule is written flat, in the site file and in the API alike:
`{id, kind, metric, severity, device_type | device, op, threshold, clear, for, ...}`; `kind`
(default `threshold`) chooses the model. The `rules` table keeps the kind's parameters in its
`params` column (durations in seconds), the other fields in columns of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from caretaker.durations import Duration
from caretaker.errors import Invalid
from caretaker.ids import Ident
from caretaker.severity import Severity
from caretaker.site_config import ShortText, Text, problems

KINDS = ("threshold", "count", "offline", "rate")
Metric = Annotated[str, StringConstraints(pattern=r"^[^\x00]{1,64}$")]
Op = Literal[">", ">=", "<", "<=", "==", "!="]
# Parameters a device may override for itself (devices.overrides {"rule-id": {...}}).
OVERRIDABLE = {"threshold", "clear", "for", "clear_for", "count", "clear_count", "window",
               "timeout"}


class RuleError(Invalid):
    """A rule definition that cannot be used; the message says what is wrong."""


def compare(value: float, op: str, threshold: float) -> bool:
    """value <op> threshold."""
    if op == ">":
        return value > threshold
    if op == ">=":
        return value >= threshold
    if op == "<":
        return value < threshold
    if op == "<=":
        return value <= threshold
    if op == "==":
        return value == threshold
    return value != threshold


class Inhibits(BaseModel):
    """Which alarms an active alarm of this rule mutes: rule ids (or '*'), site- or device-wide."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: Literal["*"] | list[Ident] = "*"
    scope: Literal["site", "device"] = "site"


def _inhibits_shape(value: Any) -> Any:
    """`inhibits: [a, b]` or `inhibits: '*'` is short for `{rules: ...}`."""
    return {"rules": value} if isinstance(value, list | str) else value


class RuleBase(BaseModel):
    """What every rule kind has: identity, scope, severity."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    site_id: Ident = Field(default="", description=(
        "the rule's site: required in the API; a site file's rules belong to its site"))
    id: Ident
    name: ShortText = Field(default="", description="defaults to the id")
    severity: Severity = "major"
    enabled: bool = True
    device_type: Ident | None = Field(default=None, description="only devices of this type")
    device_id: Ident | None = Field(default=None, alias="device",
                                    description="only this device (not with device_type)")
    inhibits: Inhibits | None = None
    description: Text | None = None

    @field_validator("inhibits", mode="before")
    @classmethod
    def _inhibits(cls, value: Any) -> Any:
        return _inhibits_shape(value)

    @model_validator(mode="before")
    @classmethod
    def _name(cls, value: Any) -> Any:
        if isinstance(value, dict) and not value.get("name") and isinstance(value.get("id"), str):
            return {**value, "name": value["id"]}
        return value

    @model_validator(mode="after")
    def _scope(self) -> RuleBase:
        if self.device_type is not None and self.device_id is not None:
            raise ValueError("give device_type or device, not both")
        return self

    def applies_to(self, device_id: str, device_type: str | None) -> bool:
        """Whether this rule covers a device of this site."""
        if self.device_id is not None:
            return self.device_id == device_id
        return self.device_type is None or self.device_type == device_type

    def for_device(self, overrides: dict[str, Any] | None) -> Rule:
        """This rule with a device's own overrides of its parameters applied (validated)."""
        mine = (overrides or {}).get(self.id)
        if not isinstance(mine, dict):
            return self  # type: ignore[return-value]
        changed = {k: v for k, v in mine.items() if k in OVERRIDABLE}
        if not changed:
            return self  # type: ignore[return-value]
        return parse_rule(self.site_id, {**self.definition(), **changed})

    def params(self) -> dict[str, Any]:
        """The kind's parameters as the `params` column stores them (durations in seconds)."""
        out = self.model_dump(include=set(self.param_names()), by_alias=True, exclude_none=True)
        return {k: v.total_seconds() if isinstance(v, timedelta) else v for k, v in out.items()}

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        """The attribute names of this kind's parameters."""
        return tuple(n for n in cls.model_fields if n not in RuleBase.model_fields
                     and n not in ("kind", "metric"))

    def definition(self) -> dict[str, Any]:
        """The rule in its written shape (as a site file or the API gives it)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True,
                               exclude={"site_id"})


class _Compared(RuleBase):
    op: Op = Field(default=">", description="how a reading compares with threshold")
    threshold: float = Field(allow_inf_nan=False)


class _Cleared(_Compared):
    clear: float | None = Field(default=None, allow_inf_nan=False, description=(
        "hysteresis: firing stops when the value no longer meets `op clear`; default threshold"))
    for_: Duration = Field(default=timedelta(0), alias="for",
                           description="hold: the condition must last this long to fire")
    clear_for: Duration = Field(default=timedelta(0),
                                description="the clear condition must last this long")

    @model_validator(mode="after")
    def _clear_needs_order(self) -> _Cleared:
        if self.clear is not None and self.op in ("==", "!="):
            raise ValueError("clear needs an ordering op (>, >=, <, <=)")
        return self


class ThresholdRule(_Cleared):
    """A reading beyond a threshold for a hold time; clears with hysteresis."""

    kind: Literal["threshold"] = "threshold"
    metric: Metric


class CountRule(_Compared):
    """`count` readings in a row beyond the threshold; clears after `clear_count` good ones."""

    kind: Literal["count"]
    metric: Metric
    count: int = Field(default=3, ge=1, le=10_000)
    clear_count: int = Field(default=1, ge=1, le=10_000)


class RateRule(_Cleared):
    """The change of a metric across a sliding `window` compared with the threshold."""

    kind: Literal["rate"]
    metric: Metric
    window: Duration


class OfflineRule(RuleBase):
    """No message for `timeout`, or the device's status / Last Will says offline."""

    kind: Literal["offline"]
    timeout: Duration = Field(default=timedelta(minutes=5))
    lwt: bool = Field(default=True, description="an `offline` status / Last Will fires at once")

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive")
        return value

    @property
    def metric(self) -> None:
        """An offline rule reads no metric."""
        return None


def _kind(value: Any) -> str | None:
    """The union member's tag (`kind=...`; error paths leave such tags out)."""
    kind = value.get("kind", "threshold") if isinstance(value, dict) else getattr(
        value, "kind", None)
    return f"kind={kind}" if kind in KINDS else None


Rule = Annotated[
    Annotated[ThresholdRule, Tag("kind=threshold")] | Annotated[CountRule, Tag("kind=count")]
    | Annotated[OfflineRule, Tag("kind=offline")] | Annotated[RateRule, Tag("kind=rate")],
    Discriminator(_kind, custom_error_type="invalid_kind",
                  custom_error_message="kind must be one of threshold, count, offline, rate"),
]
"""A rule of any kind, chosen by `kind` (default threshold)."""

RULE: TypeAdapter[Rule] = TypeAdapter(Rule)


def parse_rule(site_id: str, spec: Any) -> Rule:
    """A rule from its written shape; RuleError naming the field (`threshold: ...`)."""
    if not isinstance(spec, dict):
        raise RuleError(f"a rule must be a mapping, not {spec!r}")
    try:
        rule = RULE.validate_python({**spec, "site_id": site_id})
    except ValidationError as exc:
        where = f"rule {spec.get('id')}" if isinstance(spec.get("id"), str) else "rule"
        raise RuleError(f"{where}: " + "; ".join(problems(exc, empty=""))) from None
    return rule


def rule_from_row(row: dict[str, Any]) -> Rule:
    """A rule from its `rules` table row."""
    spec = {"id": row["id"], "name": row["name"], "kind": row["kind"],
            "severity": row["severity"], "enabled": row["enabled"],
            "device_type": row["device_type"], "device": row["device_id"],
            "inhibits": row["inhibits"], "description": row["description"],
            **(row["params"] or {})}
    if row["metric"] is not None:
        spec["metric"] = row["metric"]
    return parse_rule(row["site_id"], spec)


def rule_columns(rule: Rule) -> dict[str, Any]:
    """The `rules` table columns of a rule (besides site_id and id)."""
    return {"name": rule.name, "kind": rule.kind, "metric": rule.metric,
            "enabled": rule.enabled, "severity": rule.severity,
            "device_type": rule.device_type, "device_id": rule.device_id,
            "params": rule.params(),
            "inhibits": rule.inhibits.model_dump() if rule.inhibits else None,
            "description": rule.description}


@dataclass(frozen=True)
class Reading:
    """One telemetry value of one device, as the ingest committed it."""

    site: str
    device: str
    metric: str
    ts: datetime
    value: float | None
    text: str | None = None


@dataclass(frozen=True)
class Decision:
    """What evaluation decided for one (rule, device): raise, update or clear its alarm."""

    action: str  # "raise" | "update" | "clear"
    at: datetime
    value: float | None = None
    retrigger: bool = False  # an update where the condition was re-entered
    message: str = ""
