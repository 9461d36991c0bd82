"""Rules, readings and decisions as values: each rule kind a pydantic model with typed parameters.

A rule is written flat, in the site file and in the API alike:
`{id, kind, metric, severity, device_type | device, op, threshold, clear, for, ...}`; `kind`
(default `threshold`) chooses the model. The `rules` table keeps the kind's parameters in its
`params` column (durations in seconds), the other fields in columns of their own.

Threshold and rate rules may instead give `levels`: the severity levels of one condition
(`[{severity: warning, threshold: 4.5, clear: 4.0}, {severity: major, threshold: 7.1}, ...]`),
one rule and one alarm whose severity rises and falls between them. A rule without levels is
a ladder of one rung.
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
from caretaker.severity import SEVERITY_RANK, Severity
from caretaker.site_config import ShortText, Text, problems

KINDS = ("threshold", "count", "offline", "rate")
Metric = Annotated[str, StringConstraints(pattern=r"^[^\x00]{1,64}$")]
Op = Literal[">", ">=", "<", "<=", "==", "!="]
# Parameters a device may override for itself (devices.overrides {"rule-id": {...}}).
OVERRIDABLE = {"threshold", "clear", "for", "clear_for", "count", "clear_count", "window",
               "timeout", "levels"}
MAX_LEVELS = 4  # one per severity
RISING = (">", ">=")  # ops whose worse levels have higher thresholds


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


class Level(BaseModel):
    """One severity level of a rule: its threshold, clear value and hold times."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    severity: Severity
    threshold: float = Field(allow_inf_nan=False)
    clear: float | None = Field(default=None, allow_inf_nan=False, description=(
        "the level is left when the value no longer meets `op clear`; default threshold"))
    for_: Duration | None = Field(default=None, alias="for",
                                  description="hold time of this level; default the rule's")
    clear_for: Duration | None = Field(default=None,
                                       description="clear hold of this level; default the rule's")


@dataclass(frozen=True)
class Rung:
    """A level as evaluation uses it: every value resolved (hold times in seconds)."""

    severity: str
    threshold: float
    clear: float
    hold: float
    clear_hold: float


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
        return {k: _seconds(v) for k, v in out.items()}

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        """The attribute names of this kind's parameters."""
        return tuple(n for n in cls.model_fields if n not in RuleBase.model_fields
                     and n not in ("kind", "metric"))

    def definition(self) -> dict[str, Any]:
        """The rule in its written shape (as a site file or the API gives it)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True,
                               exclude={"site_id"})


def _seconds(value: Any) -> Any:
    """Durations (also inside lists and mappings) as seconds, for the `params` column."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {k: _seconds(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_seconds(v) for v in value]
    return value


class _Compared(RuleBase):
    op: Op = Field(default=">", description="how a reading compares with threshold")
    threshold: float = Field(allow_inf_nan=False)


def _worst(levels: Any) -> str | None:
    """The worst severity among written levels (None if they cannot tell)."""
    found = []
    for level in levels if isinstance(levels, list | tuple) else []:
        severity = level.get("severity") if isinstance(level, dict) else getattr(
            level, "severity", None)
        if severity in SEVERITY_RANK:
            found.append(severity)
    return max(found, key=SEVERITY_RANK.__getitem__) if found else None


class _Cleared(RuleBase):
    op: Op = Field(default=">", description="how a reading compares with threshold")
    threshold: float | None = Field(default=None, allow_inf_nan=False, description=(
        "fires when the value meets `op threshold`; give threshold or levels"))
    clear: float | None = Field(default=None, allow_inf_nan=False, description=(
        "hysteresis: firing stops when the value no longer meets `op clear`; default threshold"))
    for_: Duration = Field(default=timedelta(0), alias="for",
                           description="hold: the condition must last this long to fire")
    clear_for: Duration = Field(default=timedelta(0),
                                description="the clear condition must last this long")
    levels: tuple[Level, ...] | None = Field(
        default=None, min_length=1, max_length=MAX_LEVELS, description=(
            "severity levels of one condition, least severe first (instead of threshold,"
            " clear and severity): one alarm whose severity follows the level reached"))

    @model_validator(mode="before")
    @classmethod
    def _severity_of_levels(cls, value: Any) -> Any:
        """With levels, the rule's severity is its worst level's unless written."""
        if isinstance(value, dict) and value.get("levels") and "severity" not in value:
            worst = _worst(value["levels"])
            if worst is not None:
                return {**value, "severity": worst}
        return value

    @model_validator(mode="after")
    def _check(self) -> _Cleared:
        if self.levels is None:
            if self.threshold is None:
                raise ValueError("threshold: Field required (or give levels)")
            if self.clear is not None and self.op in ("==", "!="):
                raise ValueError("clear needs an ordering op (>, >=, <, <=)")
            return self
        _check_levels(self)
        return self

    def ladder(self) -> tuple[Rung, ...]:
        """The rule's levels, least severe first, every value resolved."""
        hold, clear_hold = self.for_.total_seconds(), self.clear_for.total_seconds()
        if self.levels is None:
            assert self.threshold is not None
            return (Rung(self.severity, self.threshold,
                         self.threshold if self.clear is None else self.clear, hold,
                         clear_hold),)
        return tuple(Rung(lv.severity, lv.threshold,
                          lv.threshold if lv.clear is None else lv.clear,
                          hold if lv.for_ is None else lv.for_.total_seconds(),
                          clear_hold if lv.clear_for is None else lv.clear_for.total_seconds())
                     for lv in self.levels)


def _check_levels(rule: _Cleared) -> None:
    """Levels replace threshold/clear; worse levels lie further out, each with its hysteresis."""
    assert rule.levels is not None
    if rule.threshold is not None or rule.clear is not None:
        raise ValueError("give threshold and clear, or levels, not both")
    if rule.op not in (">", ">=", "<", "<="):
        raise ValueError("levels need an ordering op (>, >=, <, <=)")
    ranks = [SEVERITY_RANK[lv.severity] for lv in rule.levels]
    if ranks != sorted(set(ranks)):
        raise ValueError("levels: list each severity once, least severe first"
                         " (warning, minor, major, critical)")
    sign = 1.0 if rule.op in RISING else -1.0
    for lv in rule.levels:
        if lv.clear is not None and sign * (lv.threshold - lv.clear) < 0:
            side = "above" if sign > 0 else "below"
            raise ValueError(f"levels: {lv.severity}: clear {lv.clear:g} must not lie {side}"
                             f" its threshold {lv.threshold:g} (op {rule.op})")
    for low, high in zip(rule.levels, rule.levels[1:], strict=False):
        if sign * (high.threshold - low.threshold) <= 0:
            way = "higher" if sign > 0 else "lower"
            raise ValueError(f"levels: {high.severity}'s threshold must be {way} than"
                             f" {low.severity}'s (op {rule.op})")
        low_clear = low.threshold if low.clear is None else low.clear
        high_clear = high.threshold if high.clear is None else high.clear
        if sign * (high_clear - low_clear) < 0:
            raise ValueError(f"levels: {high.severity}'s clear must not lie inside"
                             f" {low.severity}'s")
    worst = rule.levels[-1].severity
    if rule.severity != worst:
        raise ValueError(f"severity: a rule with levels has its worst level's severity"
                         f" ({worst}); leave severity out")


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

    action: str  # "raise" | "update" | "level" (severity changed) | "clear"
    at: datetime
    value: float | None = None
    retrigger: bool = False  # an update where the condition was re-entered
    message: str = ""
    severity: str | None = None  # raise and level: the alarm's severity from now on
