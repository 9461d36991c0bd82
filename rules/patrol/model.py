"""Routes and schedules as pydantic models: the site file and the API validate through them.

Each model reads the written shape (durations `20m`; times `"22:00"`; weekdays `mon`) and
holds typed values (timedelta, time, weekday numbers); in JSON it writes the shape it reads.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from caretaker.durations import Duration
from caretaker.errors import Invalid
from caretaker.ids import Ident
from caretaker.site_config import ShortText, problems

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KINDS = ("daily", "every", "weekly", "monthly")
MAX_STEPS = 500


class PatrolConfigError(Invalid):
    """A route or schedule definition that cannot be used; the message says what is wrong."""


def parse_time(value: Any) -> time:
    """'22:00' (or 22:00 read by YAML 1.1 as the minutes 1320) → time."""
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        value = f"{value // 60:02d}:{value % 60:02d}"
    m = re.match(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$", str(value).strip()[:16])
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59 or int(m.group(3) or 0) > 59:
        raise ValueError(f"{value!r} is not a time like 22:00")
    return time(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def parse_weekday(value: Any) -> int:
    """'mon'..'sun' (or 'monday') → 0..6."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    key = str(value).strip().lower()[:3]
    if key not in WEEKDAYS:
        raise ValueError(f"weekday {value!r} is not one of {', '.join(WEEKDAYS)}")
    return WEEKDAYS.index(key)


def check_timezone(name: str) -> ZoneInfo:
    """The zone for an IANA name, or a clear error."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PatrolConfigError(f"unknown time zone {name!r}") from None


def _hhmm(t: time) -> str:
    return t.strftime("%H:%M")


ClockTime = Annotated[
    time, BeforeValidator(parse_time), PlainSerializer(_hhmm, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,2}:\d{2}$", "examples": ["22:00"],
                    "description": "local time HH:MM"}),
]
Weekday = Annotated[
    int, BeforeValidator(parse_weekday),
    PlainSerializer(lambda d: WEEKDAYS[d], return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "enum": list(WEEKDAYS)}),
]


Post = Annotated[str, StringConstraints(pattern=r"^[^\x00]{1,64}$")]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Spec):
    """One checkpoint of a route: expected `offset` after the start, ± `tolerance`."""

    checkpoint: Ident
    offset: Duration = timedelta(0)
    tolerance: Duration = timedelta(minutes=5)

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, value: Any) -> Any:
        """A step may be written as just its checkpoint id."""
        return {"checkpoint": value} if isinstance(value, str) else value


class Route(_Spec):
    """A list of checkpoints walked in order (or in any order) as one round."""

    site_id: Ident | None = Field(default=None, description=(
        "the route's site: required in the API; a site file's routes belong to its site"))
    id: Ident
    name: ShortText = Field(default="", description="defaults to the id")
    ordered: bool = True
    min_duration: Duration = Field(default=timedelta(0), description=(
        "a run walked faster than this is flagged too_short"))
    # A scan this long outside a visit's window still counts for it (early or late).
    grace: Duration = timedelta(minutes=30)
    # No scan for this long during a run in progress raises a lone-worker gap; None: off.
    lone_worker: Duration | None = None
    steps: tuple[Step, ...] = Field(min_length=1, max_length=MAX_STEPS)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, value: Any) -> Any:
        if isinstance(value, dict):
            value = dict(value)
            if not value.get("name") and isinstance(value.get("id"), str):
                value["name"] = value["id"]
            if value.get("lone_worker") in (False, 0, ""):
                value["lone_worker"] = None
        return value

    @model_validator(mode="after")
    def _steps(self) -> Route:
        seen = [s.checkpoint for s in self.steps]
        twice = sorted({c for c in seen if seen.count(c) > 1})
        if twice:
            raise ValueError(f"a checkpoint appears twice: {', '.join(twice)}")
        if self.ordered and any(b.offset < a.offset
                                for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError("ordered steps need non-decreasing offsets")
        return self

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


class Window(_Spec):
    """Local hours an `every` schedule runs in; an end at or before the start crosses midnight."""

    start: ClockTime
    end: ClockTime


class Monthly(_Spec):
    """Monthly recurrence: `day` of the month (-1 = last day), or the `nth` `weekday`."""

    day: int | None = Field(default=None, description="1..31, or -1 for the last day")
    nth: Literal[1, 2, 3, 4, 5, -1, -2] | None = Field(default=None, description=(
        "1..5, or -1 / -2 for the last / second to last"))
    weekday: Weekday | None = Field(default=None, description="mon..sun, with nth")

    @field_validator("day")
    @classmethod
    def _day(cls, value: int | None) -> int | None:
        if value is not None and not (1 <= value <= 31 or value == -1):
            raise ValueError("monthly day must be 1..31 or -1")
        return value

    @model_validator(mode="after")
    def _one_way(self) -> Monthly:
        if (self.day is None) == (self.nth is None):
            raise ValueError("monthly needs {day: N} or {nth: N, weekday: fri}")
        if self.nth is not None and self.weekday is None:
            raise ValueError("monthly nth needs a weekday")
        return self


def _list_of_times(value: Any) -> Any:
    """`at: "09:00"` is short for `at: ["09:00"]`; times come out sorted."""
    if value is None:
        return []
    if isinstance(value, str | int | time):
        value = [value]
    if isinstance(value, list | tuple):
        return sorted(parse_time(v) for v in value)
    return value


class Schedule(_Spec):
    """When a route is walked, by whom (a guard, or any guard of a post), in the site's zone."""

    site_id: Ident | None = Field(default=None, description=(
        "the schedule's site: required in the API; a site file's schedules belong to its site"))
    id: Ident
    route: Ident
    kind: Literal["daily", "every", "weekly", "monthly"] = "daily"
    guard: Ident | None = None
    post: Post | None = None
    at: Annotated[tuple[ClockTime, ...], BeforeValidator(_list_of_times)] = Field(
        default=(), max_length=96, description="local start times (daily, weekly, monthly)")
    every: Duration | None = Field(default=None, description="kind every: the interval")
    window: Window | None = None
    weekdays: frozenset[Weekday] = Field(default=frozenset(), description=(
        "optional for daily and every, required for weekly"))
    monthly: Monthly | None = None
    start_tolerance: Duration | None = Field(default=None, description=(
        "default: the route's earliest window end"))
    effective_from: AwareDatetime | date | None = Field(default=None, description=(
        "when the schedule takes effect: a date (local midnight) or a date-time with an "
        "offset; default: when it is first loaded (kept when loaded again)"))
    effective_until: date | None = None
    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _blanks(cls, value: Any) -> Any:
        if isinstance(value, dict):
            value = {k: (None if v == "" and k in ("guard", "post", "effective_from",
                                                    "effective_until",
                                                    "start_tolerance") else v)
                     for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _kind_fields(self) -> Schedule:
        if (self.guard is None) == (self.post is None):
            raise ValueError("give exactly one of guard or post")
        if self.kind == "every":
            if self.every is None or self.every < timedelta(minutes=1):
                raise ValueError("every must be at least 1m")
        elif not self.at:
            raise ValueError(f'kind {self.kind} needs at: ["HH:MM", ...]')
        if self.kind == "weekly" and not self.weekdays:
            raise ValueError("weekly needs weekdays: [mon, ...]")
        if self.kind == "monthly" and self.monthly is None:
            raise ValueError("monthly needs monthly: {day: N} or {nth: N, weekday: fri}")
        first = self.effective_from
        if isinstance(first, datetime):
            first = first.date()
        if self.effective_until is not None and first is not None \
                and self.effective_until < first:
            raise ValueError("effective_until is before effective_from")
        return self


def _parse(model: type[Route] | type[Schedule], item: Any) -> Any:
    if not isinstance(item, dict):
        raise PatrolConfigError(f"a {model.__name__.lower()} must be a mapping, not {item!r}")
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        name = f"{model.__name__.lower()} {item.get('id')}" if item.get("id") else (
            model.__name__.lower())
        raise PatrolConfigError(f"{name}: " + "; ".join(problems(exc, empty=""))
                                ) from None


def route_from_dict(item: Any) -> Route:
    """A Route from its written shape; PatrolConfigError naming the field."""
    route: Route = _parse(Route, item)
    return route


def route_to_dict(route: Route) -> dict[str, Any]:
    """The written shape of a route (as stored and as the API returns it)."""
    return route.model_dump(mode="json", exclude={"site_id"})


def schedule_from_dict(item: Any) -> Schedule:
    """A Schedule from its written shape; PatrolConfigError naming the field."""
    sched: Schedule = _parse(Schedule, item)
    return sched


def schedule_to_dict(s: Schedule) -> dict[str, Any]:
    """The written shape of a schedule (as stored and as the API returns it)."""
    out = s.model_dump(mode="json", exclude={"site_id"}, exclude_none=True)
    out["weekdays"] = [WEEKDAYS[d] for d in sorted(s.weekdays)]  # sets come out unordered
    for key in ("guard", "post", "every", "window", "monthly", "start_tolerance",
                "effective_from", "effective_until"):
        out.setdefault(key, None)
    return out
