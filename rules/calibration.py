"""People against sensors: the `calibration:` section, and its pure decisions.

A technician's checklist answer at an equipment checkpoint (a gauge reading of outlet
pressure, say) is compared with the linked device's sensor at the scan's time. Shape:

    calibration:
      - checkpoint: ecp-pump-1       # an equipment checkpoint
        reading: outlet_pressure     # the key of a checklist item's answer (its `reading:`)
        metric: outlet_pressure      # the sensor's metric
        device: pump-1               # optional: default the checkpoint's device
        tolerance: 0.05              # absolute, in the metric's unit; or "5%" of the sensor
        repeat: 2                    # this many disagreements in a row open a ticket
        within: 10m                  # the sensor reading nearest the scan, at most this far
        severity: minor              # the calibration ticket's severity

Everything here is pure; rules/calibration_checks.py loads, stores and opens the tickets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)

from caretaker.durations import Duration
from caretaker.ids import Ident

Outcome = Literal["agreed", "disagreed", "no_sensor_value"]
Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
MAX_WITHIN = timedelta(days=1)
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True)
class Tolerance:
    """How far a reading may be from the sensor's: absolute (metric unit) or % of the sensor."""

    value: float
    percent: bool = False

    def allowed(self, sensor: float) -> float:
        """The largest difference that still agrees, for this sensor value."""
        return abs(sensor) * self.value / 100 if self.percent else self.value

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.percent else f"{self.value:g}"


def _tolerance(value: Any) -> Tolerance:
    if isinstance(value, Tolerance):
        return value
    if isinstance(value, bool):
        raise ValueError("a tolerance is a number (absolute) or a percentage like '5%'")
    if isinstance(value, int | float):
        number, percent = float(value), False
    else:
        match = _PERCENT.match(str(value)[:32])
        if match is None:
            try:
                number, percent = float(str(value)[:32]), False
            except ValueError:
                raise ValueError(f"{value!r} is not a tolerance: give a number (absolute, "
                                 "in the metric's unit) or a percentage like '5%'") from None
        else:
            number, percent = float(match.group(1)), True
    if not math.isfinite(number) or number < 0 or (percent and number > 100):
        raise ValueError(f"{value!r} is not a tolerance between 0 and "
                         + ("100%" if percent else "infinity"))
    return Tolerance(number, percent)


ToleranceField = Annotated[Tolerance, BeforeValidator(_tolerance),
                           PlainSerializer(lambda t: str(t) if t.percent else t.value)]


def _positive_window(value: timedelta) -> timedelta:
    if value <= timedelta(0) or value > MAX_WITHIN:
        raise ValueError("within must be more than 0s and at most 1d")
    return value


class Link(BaseModel):
    """One checklist answer that reads what a device's sensor reads (a calibration link)."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: Ident
    reading: Key = Field(description="the checklist item's `reading:` key")
    metric: Key
    device: Ident | None = Field(default=None, description="default: the checkpoint's device")
    tolerance: ToleranceField = Field(description="a number (absolute) or '5%' of the sensor")
    repeat: int = Field(default=2, ge=1, le=100)
    within: Annotated[Duration, AfterValidator(_positive_window)] = timedelta(minutes=10)
    severity: Literal["critical", "major", "minor"] = "minor"


def _unique_links(links: list[Link]) -> list[Link]:
    keys = [(link.checkpoint, link.reading) for link in links]
    twice = sorted({f"{c}/{r}" for c, r in keys if keys.count((c, r)) > 1})
    if twice:
        raise ValueError(f"a checkpoint's reading is linked twice: {', '.join(twice)}")
    return links


Calibration = Annotated[list[Link], AfterValidator(_unique_links)]


def check_against_checklist(link: Link, checkpoint: dict[str, Any] | None) -> str | None:
    """Why a link cannot apply to this checkpoint row (kind, device, checklist), or None."""
    if checkpoint is None:
        return f"checkpoint {link.checkpoint!r} does not exist"
    if checkpoint.get("kind") != "equipment":
        return f"checkpoint {link.checkpoint!r} is not an equipment checkpoint"
    if link.device is None and not checkpoint.get("device_id"):
        return f"checkpoint {link.checkpoint!r} names no device: give `device:`"
    keys = [item.get("reading") for item in checkpoint.get("checklist") or []
            if isinstance(item, dict)]
    if link.reading not in keys:
        known = ", ".join(str(k) for k in keys if k) or "none"
        return (f"checkpoint {link.checkpoint!r} has no checklist item with reading "
                f"{link.reading!r} (its readings: {known})")
    return None


# --- the decisions ------------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    """A reading against the sensor: the outcome, the difference and the tolerance applied."""

    outcome: Outcome
    difference: float | None = None   # manual − sensor
    allowed: float | None = None


def manual_number(value: Any) -> float | None:
    """A checklist answer as a number (None: not a number, so nothing to compare)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def compare(manual: float, sensor: float | None, tolerance: Tolerance) -> Comparison:
    """Compare a reading with the sensor's value (None: no sensor value in the window)."""
    if sensor is None or not math.isfinite(sensor):
        return Comparison("no_sensor_value")
    difference = manual - sensor
    allowed = tolerance.allowed(sensor)
    # a hair of float noise must not turn 0.45 vs 0.40 with tolerance 0.05 into a disagreement
    agreed = abs(difference) <= allowed + 1e-9 * max(1.0, abs(sensor))
    return Comparison("agreed" if agreed else "disagreed", difference, allowed)


def streak(outcome: Outcome, earlier: Iterable[Outcome]) -> int:
    """Disagreements in a row ending with this one; `earlier` newest first.

    A check without a sensor value neither agrees nor disagrees: it is skipped, so it never
    breaks (nor extends) a run of disagreements.
    """
    if outcome != "disagreed":
        return 0
    count = 1
    for previous in earlier:
        if previous == "no_sensor_value":
            continue
        if previous != "disagreed":
            break
        count += 1
    return count


Action = Literal["none", "open", "note_disagreed", "note_agreed"]


def decide(outcome: Outcome, run: int, repeat: int, *, live_ticket: bool) -> Action:
    """What a check does to the device+metric's calibration ticket.

    The `repeat`-th disagreement in a row opens one; while one is live, every later check
    with a sensor value (disagreeing or agreeing again) is noted on it instead.
    """
    if outcome == "disagreed" and (run >= repeat or live_ticket):
        return "note_disagreed" if live_ticket else "open"
    if outcome == "agreed" and live_ticket:
        return "note_agreed"
    return "none"
