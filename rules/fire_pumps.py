"""The fire-pump test log (消防泵周期试验): what a start is, which periods need which test.

GB 50974-2014 §14.0.4 asks for a weekly automatic start of every fire pump, a monthly manual
start, and a daily check of the jockey pump's (稳压泵) start/stop pressures and start count.
Everything here is pure: samples of a pump's telemetry in, runs and verdicts out; the job in
rules/fire_pump_store.py loads and saves. A pump must report `running`; samples without it
are skipped. The site-file section `fire_pumps:` is `FirePumpSpec`.

A pump's sample is one timestamp's `running` (bool), `outlet_pressure` (MPa), `flow` and
`start_mode`: the controller's state register, "standby", "auto" (started by its test timer,
a pressure switch or the fire alarm) or "manual" (started by hand at the control cabinet or
from the fire control room). A run is the samples from the first running one to the next
one not running; its mode is the register's value when it started.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from caretaker.durations import Duration
from caretaker.ids import Ident

Test = Literal["weekly_auto", "monthly_manual", "jockey_daily"]
TESTS: tuple[Test, ...] = ("weekly_auto", "monthly_manual", "jockey_daily")
# The mode a start test needs: the weekly test proves the automatic chain, the monthly one
# the manual start.
MODE_OF: dict[str, str] = {"weekly_auto": "auto", "monthly_manual": "manual"}
MODES = ("auto", "manual")
Status = Literal["done", "failed", "missed"]
METRICS = ("running", "outlet_pressure", "flow", "start_mode")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Band(_Spec):
    """A pressure band in MPa, both ends included."""

    min: float = Field(ge=0, le=10)
    max: float = Field(ge=0, le=10)

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.min > self.max:
            raise ValueError("min must not be above max")
        return self

    def holds(self, value: float) -> bool:
        """Whether `value` lies in the band."""
        return self.min <= value <= self.max


class JockeySpec(_Spec):
    """The jockey pump's daily check: its start and stop pressures, and starts per day."""

    start_pressure: Band | None = Field(default=None, description="the pressure it must start at")
    stop_pressure: Band | None = Field(default=None, description="the pressure it must stop at")
    max_starts_per_day: int = Field(default=96, ge=1, le=100_000,
                                    description="more starts mean a leak in the fire main")


def _distinct(items: list[str]) -> list[str]:
    if len(set(items)) != len(items):
        raise ValueError("an entry appears twice")
    return items


class FirePumpSpec(_Spec):
    """The site file's `fire_pumps:` section; every key optional."""

    required: Annotated[list[Test], AfterValidator(_distinct)] = Field(
        default_factory=lambda: list(TESTS), description="the tests the log checks")
    fire_pump_types: Annotated[list[Ident], AfterValidator(_distinct)] = Field(
        default_factory=lambda: ["fire_pump"], max_length=20)
    jockey_pump_types: Annotated[list[Ident], AfterValidator(_distinct)] = Field(
        default_factory=lambda: ["jockey_pump"], max_length=20)
    min_run: Duration = Field(timedelta(minutes=1), description="a shorter run is no test")
    min_pressure: float | None = Field(None, ge=0, le=10,
                                       description="MPa a test run must reach")
    unknown_mode: Literal["auto", "manual"] | None = Field(
        None, description="what a start counts as when the pump reports no start_mode")
    jockey: JockeySpec = Field(default_factory=JockeySpec)
    severity: Literal["critical", "major", "minor"] = Field(
        "major", description="of the work order each gap opens")
    judge_silent_after: Duration = Field(
        timedelta(days=1), description="a period is judged once the pump has reported past its "
        "end; one it has not is judged this long after the end (an offline pump misses its "
        "tests, but a gateway uploading its buffer late is waited for)")

    @model_validator(mode="after")
    def _positive(self) -> FirePumpSpec:
        if self.min_run < timedelta(0) or self.judge_silent_after <= timedelta(0):
            raise ValueError("min_run must not be negative, judge_silent_after must be positive")
        return self


@dataclass(frozen=True, slots=True)
class Sample:
    """One timestamp of a pump's telemetry (any value may be missing)."""

    time: datetime
    running: bool | None = None
    pressure: float | None = None
    flow: float | None = None
    mode: str | None = None


@dataclass(frozen=True, slots=True)
class Run:
    """One start of a pump: when, how long, the pressure reached, and how it was started.

    `start_pressure`: the pressure just before it started (the last sample standing still);
    `stop_pressure`: just after it stopped (the first sample standing still again).
    """

    started_at: datetime
    stopped_at: datetime
    pressure_reached: float | None = None
    start_pressure: float | None = None
    stop_pressure: float | None = None
    flow_max: float | None = None
    mode: str | None = None

    @property
    def duration(self) -> timedelta:
        """From the first running sample to the first one stopped."""
        return self.stopped_at - self.started_at


def _max(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def detect_runs(samples: Sequence[Sample]) -> tuple[list[Run], datetime | None]:
    """The finished runs in time-ordered samples, and where to resume next time.

    A run counts only when a stopped sample comes before it and after it (a run cut by the
    edge of the samples is seen whole next time). The resume point is the last stopped
    sample: every run starting before it is finished and returned.
    """
    runs: list[Run] = []
    before: Sample | None = None  # the last stopped sample
    current: list[Sample] = []
    resume: datetime | None = None
    for s in samples:
        state = s.running
        if state is None:
            continue
        if state:
            if before is not None:
                current.append(s)
            continue
        if current and before is not None:
            first = current[0]
            mode = next((x.mode for x in current if x.mode in MODES), None)
            runs.append(Run(started_at=first.time, stopped_at=s.time,
                            pressure_reached=_max(x.pressure for x in current),
                            start_pressure=before.pressure, stop_pressure=s.pressure,
                            flow_max=_max(x.flow for x in current), mode=mode))
        current = []
        before = s
        resume = s.time
    return runs, resume


@dataclass(frozen=True, slots=True)
class Window:
    """Where one run lies in a pump's `running` series: the stopped reading before it, its
    first running reading, and the first stopped reading after it."""

    before: datetime
    start: datetime
    stop: datetime


def run_windows(points: Iterable[tuple[datetime, bool]]
                ) -> tuple[list[Window], datetime | None]:
    """The finished runs in a time-ordered `running` series, and the start of one still going.

    A run already going at the first point is skipped (its start is not in the series).
    """
    windows: list[Window] = []
    before: datetime | None = None
    start: datetime | None = None
    for t, on in points:
        if on:
            if start is None and before is not None:
                start = t
            continue
        if start is not None and before is not None:
            windows.append(Window(before, start, t))
        start = None
        before = t
    return windows, start


# ---- periods, in the site's time zone ----------------------------------------------------

def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


def _next_first(day: date, test: Test) -> date:
    """The first day of the period after the one starting on `day`."""
    if test == "jockey_daily":
        return day + timedelta(days=1)
    if test == "weekly_auto":
        return day + timedelta(days=7)
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _first_day(day: date, test: Test) -> date:
    """The first day of the period holding the local date `day`."""
    if test == "jockey_daily":
        return day
    if test == "weekly_auto":
        return day - timedelta(days=day.weekday())  # weeks start on Monday
    return day.replace(day=1)


def period_of(test: Test, at: datetime, tz: str) -> tuple[datetime, datetime]:
    """The period (start, end) of a test that holds the instant `at`."""
    zone = ZoneInfo(tz)
    first = _first_day(at.astimezone(zone).date(), test)
    return _midnight(first, zone), _midnight(_next_first(first, test), zone)


def periods(test: Test, *, since: datetime, until: datetime, tz: str,
            limit: int = 1000) -> list[tuple[datetime, datetime]]:
    """Whole periods of a test that start at or after `since` and end by `until`."""
    zone = ZoneInfo(tz)
    start, end = period_of(test, since, tz)
    if start < since:
        first = end.astimezone(zone).date()
        start, end = _midnight(first, zone), _midnight(_next_first(first, test), zone)
    out: list[tuple[datetime, datetime]] = []
    while end <= until and len(out) < limit:
        out.append((start, end))
        first = end.astimezone(zone).date()
        start, end = end, _midnight(_next_first(first, test), zone)
    return out


def next_period(test: Test, start: datetime, tz: str) -> tuple[datetime, datetime]:
    """The period after the one starting at `start`."""
    zone = ZoneInfo(tz)
    after = _midnight(_next_first(start.astimezone(zone).date(), test), zone)
    return after, _midnight(_next_first(after.date(), test), zone)


# ---- verdicts ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """A period's outcome: done, failed (tried, short of the mark) or missed, and why."""

    status: Status
    run: Run | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def mode_of(run: Run, spec: FirePumpSpec) -> str | None:
    """How a run was started ("auto", "manual"), or the site's choice when it is unknown."""
    return run.mode if run.mode in MODES else spec.unknown_mode


# Why a test failed or was missed, as `details["problems"]`: {"kind", ...numbers}, so each
# language can say it (reports/templates/labels.html); `reason` says it in English.
PROBLEMS = ("no_start", "short", "low_pressure", "no_readings", "too_many_starts",
            "start_pressure", "stop_pressure")


def _say(problem: dict[str, Any]) -> str:
    """A problem in English."""
    k = problem["kind"]
    if k == "no_start":
        return f"no {problem['mode']} start"
    if k == "short":
        return f"ran {problem['value']} s, less than {problem['limit']} s"
    if k == "low_pressure":
        return f"reached {problem['value']} MPa, less than {problem['limit']} MPa"
    if k == "no_readings":
        return "no readings that day"
    if k == "too_many_starts":
        return f"{problem['value']} starts, more than {problem['limit']}: a leak?"
    which = "starts" if k == "start_pressure" else "stops"
    return f"{which} at {problem['value']} MPa, outside {problem['min']}–{problem['max']}"


def _verdict(status: Status, problems: list[dict[str, Any]], run: Run | None = None,
             details: dict[str, Any] | None = None) -> Verdict:
    unique = [dict(t) for t in dict.fromkeys(tuple(sorted(p.items())) for p in problems)]
    return Verdict(status, run, "; ".join(map(_say, unique)) or None,
                   {**(details or {}), **({"problems": unique} if unique else {})})


def start_test(test: Test, runs: Sequence[Run], spec: FirePumpSpec) -> Verdict:
    """A fire pump's weekly automatic or monthly manual start test over one period's runs."""
    want = MODE_OF[test]
    tried = [r for r in runs if mode_of(r, spec) == want]
    if not tried:
        return _verdict("missed", [{"kind": "no_start", "mode": want}])
    problems: list[dict[str, Any]] = []
    for run in tried:
        short = run.duration < spec.min_run
        low = spec.min_pressure is not None and (
            run.pressure_reached is None or run.pressure_reached < spec.min_pressure)
        if not (short or low):
            return Verdict("done", run)
        if short:
            problems.append({"kind": "short", "value": int(run.duration.total_seconds()),
                             "limit": int(spec.min_run.total_seconds())})
        if low:
            problems.append({"kind": "low_pressure", "value": run.pressure_reached,
                             "limit": spec.min_pressure})
    return _verdict("failed", problems, tried[0])


def _median(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 3) if known else None


def jockey_day(runs: Sequence[Run], samples: int, spec: FirePumpSpec) -> Verdict:
    """A jockey pump's daily check over the day's runs (`samples`: readings that day)."""
    if samples == 0:
        return _verdict("missed", [{"kind": "no_readings"}])
    j = spec.jockey
    start_p = _median(r.start_pressure for r in runs)
    stop_p = _median(r.stop_pressure for r in runs)
    details = {"starts": len(runs), "start_pressure": start_p, "stop_pressure": stop_p,
               "max_starts": j.max_starts_per_day}
    problems: list[dict[str, Any]] = []
    if len(runs) > j.max_starts_per_day:
        problems.append({"kind": "too_many_starts", "value": len(runs),
                         "limit": j.max_starts_per_day})
    for kind, band, value in (("start_pressure", j.start_pressure, start_p),
                              ("stop_pressure", j.stop_pressure, stop_p)):
        if band is not None and value is not None and not band.holds(value):
            problems.append({"kind": kind, "value": value, "min": band.min, "max": band.max})
    return _verdict("failed" if problems else "done", problems, details=details)


def tests_for(kind: Literal["fire", "jockey"], spec: FirePumpSpec) -> list[Test]:
    """The required tests of a fire pump or a jockey pump."""
    own = ("weekly_auto", "monthly_manual") if kind == "fire" else ("jockey_daily",)
    return [t for t in spec.required if t in own]
