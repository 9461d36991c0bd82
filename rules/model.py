"""Rules, readings and decisions as values; parsing and validation of rule definitions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from caretaker.errors import Invalid
from caretaker.severity import SEVERITIES

KINDS = ("threshold", "count", "offline", "rate")
OPS = (">", ">=", "<", "<=", "==", "!=")
PARAM_KEYS = {
    "threshold": {"op", "threshold", "clear", "for", "clear_for"},
    "count": {"op", "threshold", "count", "clear_count"},
    "rate": {"op", "threshold", "clear", "window", "for", "clear_for"},
    "offline": {"timeout", "lwt"},
}
# Parameters a device may override for itself (devices.overrides {"rule-id": {...}}).
OVERRIDABLE = {"threshold", "clear", "for", "clear_for", "count", "clear_count", "window",
               "timeout"}
DURATIONS = {"for", "clear_for", "window", "timeout"}
_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


class RuleError(Invalid):
    """A rule definition that cannot be used; the message says what is wrong."""


def parse_duration(value: Any, *, what: str = "duration") -> float:
    """'1h30m', '20m', '90s', '2d' or a number of seconds → seconds."""
    if isinstance(value, bool) or value is None:
        raise RuleError(f"{what}: {value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise RuleError(f"{what}: {value!r} is negative")
        return float(value)
    m = _DURATION.match(str(value))
    if not m or not any(m.groups()):
        raise RuleError(f"{what}: {value!r} is not a duration like 30s, 5m or 1h30m")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return float(timedelta(days=d, hours=h, minutes=mi, seconds=s).total_seconds())


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


@dataclass(frozen=True)
class Rule:
    """One rule of a site: what it reads, which devices it applies to, when it fires."""

    site_id: str
    id: str
    name: str
    kind: str
    severity: str
    metric: str | None = None
    enabled: bool = True
    device_type: str | None = None
    device_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    inhibits: dict[str, Any] | None = None
    description: str | None = None

    def applies_to(self, device_id: str, device_type: str | None) -> bool:
        """Whether this rule covers a device of this site."""
        if self.device_id is not None:
            return self.device_id == device_id
        return self.device_type is None or self.device_type == device_type

    def for_device(self, overrides: dict[str, Any] | None) -> Rule:
        """This rule with a device's own overrides of its parameters applied."""
        mine = (overrides or {}).get(self.id)
        if not isinstance(mine, dict):
            return self
        changed = {k: v for k, v in mine.items() if k in OVERRIDABLE}
        if not changed:
            return self
        return replace(self, params=check_params(self.kind, {**self.params, **changed}))

    def p(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Rule:
        """A rule from its `rules` table row."""
        return cls(site_id=row["site_id"], id=row["id"], name=row["name"], kind=row["kind"],
                   severity=row["severity"], metric=row["metric"], enabled=row["enabled"],
                   device_type=row["device_type"], device_id=row["device_id"],
                   params=dict(row["params"] or {}), inhibits=row["inhibits"],
                   description=row["description"])


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


def check_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validated, normalised parameters of a rule kind (durations in seconds)."""
    unknown = set(params) - PARAM_KEYS[kind]
    if unknown:
        raise RuleError(f"{kind} rule: unknown parameter(s) {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in DURATIONS:
            out[key] = parse_duration(value, what=key)
        elif key in ("threshold", "clear"):
            if isinstance(value, bool):
                value = float(value)
            if not isinstance(value, int | float):
                raise RuleError(f"{key}: {value!r} is not a number")
            out[key] = float(value)
        elif key in ("count", "clear_count"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RuleError(f"{key}: {value!r} is not a whole number ≥ 1")
            out[key] = value
        elif key == "op":
            if value not in OPS:
                raise RuleError(f"op: {value!r} is not one of {' '.join(OPS)}")
            out[key] = value
        elif key == "lwt":
            out[key] = bool(value)
    if kind != "offline":
        if "threshold" not in out:
            raise RuleError(f"{kind} rule: threshold is required")
        out.setdefault("op", ">")
    if kind == "count":
        out.setdefault("count", 3)
    if kind == "rate" and "window" not in out:
        raise RuleError("rate rule: window is required")
    if kind == "offline":
        out.setdefault("timeout", 300.0)
        out.setdefault("lwt", True)
        if out["timeout"] <= 0:
            raise RuleError("timeout must be positive")
    if "clear" in out and out.get("op") in ("==", "!="):
        raise RuleError("clear needs an ordering op (>, >=, <, <=)")
    return out


def parse_rule(site_id: str, spec: dict[str, Any]) -> Rule:
    """A rule from its YAML/JSON shape: {id, name, kind, metric, severity, device_type, ...}."""
    if not isinstance(spec, dict):
        raise RuleError(f"a rule must be a mapping, not {spec!r}")
    spec = dict(spec)
    rule_id = spec.pop("id", None)
    if not isinstance(rule_id, str) or not re.match(r"^[A-Za-z0-9_.-]{1,64}$", rule_id):
        raise RuleError(f"rule id {rule_id!r} is not an identifier")
    where = f"rule {rule_id}"
    kind = spec.pop("kind", "threshold")
    if kind not in KINDS:
        raise RuleError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    severity = spec.pop("severity", "major")
    if severity not in SEVERITIES:
        raise RuleError(f"{where}: severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    metric = spec.pop("metric", None)
    if (kind == "offline") != (metric is None):
        raise RuleError(f"{where}: " + ("an offline rule has no metric" if kind == "offline"
                                         else "metric is required"))
    device_type = spec.pop("device_type", None)
    device_id = spec.pop("device", spec.pop("device_id", None))
    if device_type is not None and device_id is not None:
        raise RuleError(f"{where}: give device_type or device, not both")
    inhibits = spec.pop("inhibits", None)
    if inhibits is not None:
        inhibits = _check_inhibits(where, inhibits)
    common = {
        "name": spec.pop("name", rule_id),
        "enabled": bool(spec.pop("enabled", True)),
        "description": spec.pop("description", None),
    }
    params = spec.pop("params", {}) or {}
    params = {**params, **spec}  # flat keys (threshold: 7.1) or nested under params:
    try:
        checked = check_params(kind, params)
    except RuleError as exc:
        raise RuleError(f"{where}: {exc}") from None
    return Rule(site_id=site_id, id=rule_id, kind=kind, severity=severity, metric=metric,
                device_type=device_type, device_id=device_id, params=checked,
                inhibits=inhibits, **common)


def _check_inhibits(where: str, value: Any) -> dict[str, Any]:
    if isinstance(value, list | str):
        value = {"rules": value}
    if not isinstance(value, dict):
        raise RuleError(f"{where}: inhibits must be a list of rule ids or a mapping")
    rules = value.get("rules", "*")
    if rules != "*" and not (isinstance(rules, list) and all(isinstance(r, str) for r in rules)):
        raise RuleError(f"{where}: inhibits.rules must be '*' or a list of rule ids")
    scope = value.get("scope", "site")
    if scope not in ("site", "device"):
        raise RuleError(f"{where}: inhibits.scope must be site or device")
    return {"rules": rules, "scope": scope}
