"""Route and schedule definitions as values, parsed and validated from YAML/JSON shapes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from caretaker.errors import Invalid

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KINDS = ("daily", "every", "weekly", "monthly")
_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


class PatrolConfigError(Invalid):
    """A route or schedule definition that cannot be used; the message says what is wrong."""


def parse_duration(value: Any, *, what: str = "duration") -> timedelta:
    """'1h30m', '20m', '90s', '2d' or a number of seconds → timedelta."""
    if isinstance(value, bool):
        raise PatrolConfigError(f"{what}: {value!r} is not a duration")
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if isinstance(value, timedelta):
        return value
    m = _DURATION.match(str(value)) if value is not None else None
    if not m or not any(m.groups()):
        raise PatrolConfigError(f"{what}: {value!r} is not a duration like 20m, 2h or 1h30m")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return timedelta(days=d, hours=h, minutes=mi, seconds=s)


def format_duration(delta: timedelta) -> str:
    """timedelta → the shortest of '2h', '20m', '1h30m', '45s'."""
    total = int(delta.total_seconds())
    if total == 0:
        return "0m"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts)


def parse_time(value: Any, *, what: str = "time") -> time:
    """'22:00' (or 22:00 read by YAML as minutes) → time."""
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):  # YAML 1.1 reads 22:00 as 1320
        value = f"{value // 60:02d}:{value % 60:02d}"
    m = re.match(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$", str(value).strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise PatrolConfigError(f"{what}: {value!r} is not a time like 22:00")
    return time(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def parse_date(value: Any, *, what: str = "date") -> date:
    """'2026-11-01' or a YAML date → date."""
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise PatrolConfigError(f"{what}: {value!r} is not a date like 2026-11-01") from None


def parse_weekday(value: Any) -> int:
    """'mon'..'sun' (or 'monday') → 0..6."""
    key = str(value).strip().lower()[:3]
    if key not in WEEKDAYS:
        raise PatrolConfigError(f"weekday {value!r} is not one of {', '.join(WEEKDAYS)}")
    return WEEKDAYS.index(key)


def check_timezone(name: str) -> ZoneInfo:
    """The zone for an IANA name, or a clear error."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PatrolConfigError(f"unknown time zone {name!r}") from None


@dataclass(frozen=True)
class Step:
    """One checkpoint of a route: expected `offset` after the start, ± `tolerance`."""

    checkpoint: str
    offset: timedelta
    tolerance: timedelta


@dataclass(frozen=True)
class Route:
    """A list of checkpoints walked in order (or in any order) as one round."""

    id: str
    name: str
    steps: tuple[Step, ...]
    ordered: bool = True
    min_duration: timedelta = timedelta(0)
    # A scan this long outside a visit's window still counts for it (early or late).
    grace: timedelta = timedelta(minutes=30)
    # No scan for this long during a run in progress raises a lone-worker gap; None: off.
    lone_worker: timedelta | None = None

    def windows(self) -> list[tuple[timedelta, timedelta, timedelta]]:
        """Per step: (due, window start, window end) as offsets from the run's start.

        Ordered routes: each step is due at its offset, on time within ± tolerance.
        Any-order routes: a step's offset is its deadline; it is on time from the start
        (less its tolerance) until offset + tolerance.
        """
        out = []
        for s in self.steps:
            if self.ordered:
                out.append((s.offset, s.offset - s.tolerance, s.offset + s.tolerance))
            else:
                out.append((s.offset, -s.tolerance, s.offset + s.tolerance))
        return out

    def default_start_tolerance(self) -> timedelta:
        """How long after the planned start a run counts as started: the earliest window end."""
        return min(end for _, _, end in self.windows())


@dataclass(frozen=True)
class Monthly:
    """Monthly recurrence: `day` of the month (-1 = last day), or the `nth` `weekday`."""

    day: int | None = None
    nth: int | None = None
    weekday: int | None = None


@dataclass(frozen=True)
class Schedule:
    """When a route is walked, by whom, in the site's time zone."""

    id: str
    route: str
    kind: str
    effective_from: date
    guard: str | None = None
    post: str | None = None
    at: tuple[time, ...] = ()
    every: timedelta | None = None
    window: tuple[time, time] | None = None
    weekdays: frozenset[int] = field(default_factory=frozenset)
    monthly: Monthly | None = None
    effective_until: date | None = None
    start_tolerance: timedelta | None = None
    enabled: bool = True


def route_from_dict(item: dict[str, Any]) -> Route:
    """A Route from its YAML/JSON shape (see rules/patrol/config.py); raises PatrolConfigError."""
    if not isinstance(item, dict) or not item.get("id"):
        raise PatrolConfigError(f"a route needs an id: {item!r}")
    rid = str(item["id"])
    raw_steps = item.get("steps") or []
    if not isinstance(raw_steps, list) or not raw_steps:
        raise PatrolConfigError(f"route {rid}: needs at least one step")
    steps = []
    for i, s in enumerate(raw_steps):
        if isinstance(s, str):
            s = {"checkpoint": s}
        if not isinstance(s, dict) or not s.get("checkpoint"):
            raise PatrolConfigError(f"route {rid}: step {i + 1} needs a checkpoint")
        offset = parse_duration(s.get("offset", 0), what=f"route {rid} step {i + 1} offset")
        tol = parse_duration(s.get("tolerance", "5m"),
                             what=f"route {rid} step {i + 1} tolerance")
        steps.append(Step(str(s["checkpoint"]), offset, tol))
    seen = [s.checkpoint for s in steps]
    if len(set(seen)) != len(seen):
        raise PatrolConfigError(f"route {rid}: a checkpoint appears twice")
    ordered = bool(item.get("ordered", True))
    if ordered and any(b.offset < a.offset for a, b in zip(steps, steps[1:], strict=False)):
        raise PatrolConfigError(f"route {rid}: ordered steps need non-decreasing offsets")
    lone = item.get("lone_worker")
    return Route(
        id=rid, name=str(item.get("name") or rid), steps=tuple(steps), ordered=ordered,
        min_duration=parse_duration(item.get("min_duration", 0),
                                    what=f"route {rid} min_duration"),
        grace=parse_duration(item.get("grace", "30m"), what=f"route {rid} grace"),
        lone_worker=None if lone in (None, False, 0, "")
        else parse_duration(lone, what=f"route {rid} lone_worker"),
    )


def route_to_dict(route: Route) -> dict[str, Any]:
    """The YAML/JSON shape of a route (inverse of route_from_dict)."""
    return {
        "id": route.id, "name": route.name, "ordered": route.ordered,
        "min_duration": format_duration(route.min_duration),
        "grace": format_duration(route.grace),
        "lone_worker": format_duration(route.lone_worker) if route.lone_worker else None,
        "steps": [{"checkpoint": s.checkpoint, "offset": format_duration(s.offset),
                   "tolerance": format_duration(s.tolerance)} for s in route.steps],
    }


def schedule_from_dict(item: dict[str, Any]) -> Schedule:
    """A Schedule from its YAML/JSON shape (see rules/patrol/config.py)."""
    if not isinstance(item, dict) or not item.get("id"):
        raise PatrolConfigError(f"a schedule needs an id: {item!r}")
    sid = str(item["id"])
    kind = str(item.get("kind", "daily"))
    if kind not in KINDS:
        raise PatrolConfigError(f"schedule {sid}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if not item.get("route"):
        raise PatrolConfigError(f"schedule {sid}: needs a route")
    guard, post = item.get("guard"), item.get("post")
    if bool(guard) == bool(post):
        raise PatrolConfigError(f"schedule {sid}: give exactly one of guard or post")
    if item.get("effective_from") in (None, ""):
        raise PatrolConfigError(f"schedule {sid}: needs effective_from")
    at_raw = item.get("at") or []
    if isinstance(at_raw, str | int | time):
        at_raw = [at_raw]
    at = tuple(sorted(parse_time(t, what=f"schedule {sid} at") for t in at_raw))
    weekdays = frozenset(parse_weekday(w) for w in (item.get("weekdays") or []))
    every = window = monthly = None
    if kind == "every":
        every = parse_duration(item.get("every"), what=f"schedule {sid} every")
        if every < timedelta(minutes=1):
            raise PatrolConfigError(f"schedule {sid}: every must be at least 1m")
        w = item.get("window")
        if w is not None:
            if not isinstance(w, dict) or "start" not in w or "end" not in w:
                raise PatrolConfigError(f"schedule {sid}: window needs start and end")
            window = (parse_time(w["start"], what=f"schedule {sid} window start"),
                      parse_time(w["end"], what=f"schedule {sid} window end"))
    elif not at:
        raise PatrolConfigError(f"schedule {sid}: kind {kind} needs at: [\"HH:MM\", ...]")
    if kind == "weekly" and not weekdays:
        raise PatrolConfigError(f"schedule {sid}: weekly needs weekdays: [mon, ...]")
    if kind == "monthly":
        m = item.get("monthly")
        if not isinstance(m, dict):
            raise PatrolConfigError(f"schedule {sid}: monthly needs monthly: {{day: N}} or "
                                    "{nth: N, weekday: fri}")
        if m.get("day") is not None:
            day = int(m["day"])
            if not (1 <= day <= 31 or day == -1):
                raise PatrolConfigError(f"schedule {sid}: monthly day must be 1..31 or -1")
            monthly = Monthly(day=day)
        else:
            nth = int(m.get("nth", 0))
            if nth not in (1, 2, 3, 4, 5, -1, -2):
                raise PatrolConfigError(f"schedule {sid}: monthly nth must be 1..5, -1 or -2")
            if m.get("weekday") is None:
                raise PatrolConfigError(f"schedule {sid}: monthly nth needs a weekday")
            monthly = Monthly(nth=nth, weekday=parse_weekday(m["weekday"]))
    st = item.get("start_tolerance")
    until = item.get("effective_until")
    return Schedule(
        id=sid, route=str(item["route"]), kind=kind,
        effective_from=parse_date(item["effective_from"], what=f"schedule {sid} effective_from"),
        effective_until=None if until in (None, "")
        else parse_date(until, what=f"schedule {sid} effective_until"),
        guard=str(guard) if guard else None, post=str(post) if post else None,
        at=at, every=every, window=window, weekdays=weekdays, monthly=monthly,
        start_tolerance=None if st in (None, "")
        else parse_duration(st, what=f"schedule {sid} start_tolerance"),
        enabled=bool(item.get("enabled", True)),
    )


def schedule_to_dict(s: Schedule) -> dict[str, Any]:
    """The YAML/JSON shape of a schedule (inverse of schedule_from_dict)."""
    out: dict[str, Any] = {
        "id": s.id, "route": s.route, "kind": s.kind, "guard": s.guard, "post": s.post,
        "at": [t.strftime("%H:%M") for t in s.at],
        "weekdays": [WEEKDAYS[d] for d in sorted(s.weekdays)],
        "effective_from": s.effective_from.isoformat(),
        "effective_until": s.effective_until.isoformat() if s.effective_until else None,
        "start_tolerance": format_duration(s.start_tolerance) if s.start_tolerance else None,
        "enabled": s.enabled,
        "every": format_duration(s.every) if s.every else None,
        "window": {"start": s.window[0].strftime("%H:%M"), "end": s.window[1].strftime("%H:%M")}
        if s.window else None,
        "monthly": None,
    }
    if s.monthly is not None:
        out["monthly"] = ({"day": s.monthly.day} if s.monthly.day is not None else
                          {"nth": s.monthly.nth, "weekday": WEEKDAYS[s.monthly.weekday or 0]})
    return out
