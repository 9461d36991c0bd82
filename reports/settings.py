"""The `reports:` site-file section: the site's report language, weekly schedule and shifts."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal

import psycopg
from psycopg.types.json import Jsonb
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from caretaker.durations import Duration
from reports._sql import one

Language = Literal["zh-CN", "en"]
LANGUAGES: tuple[Language, ...] = ("zh-CN", "en")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
# "08:00": a time of day on the site's clock.
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


def _distinct_sorted(shifts: list[str]) -> list[str]:
    if len(set(shifts)) != len(shifts):
        raise ValueError("a shift change time appears twice")
    return sorted(shifts)


def clock_time(text: str) -> time:
    """"08:00" → time(8, 0)."""
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WeeklySpec(_Spec):
    """When the weekly report of the week before is generated (site time)."""

    day: Weekday = "monday"
    at: ClockTime = "08:00"

    @property
    def weekday(self) -> int:
        """Monday 0 .. Sunday 6."""
        return WEEKDAYS.index(self.day)


class HandoverSpec(_Spec):
    """How long after a shift change both engineers have to sign its sheet."""

    sign_within: Duration = timedelta(minutes=30)


class ReportsSpec(_Spec):
    """The site file's `reports:` section; every key optional."""

    language: Language = Field(default="zh-CN", description="the reports' default language")
    weekly: WeeklySpec = Field(default_factory=WeeklySpec)
    shifts: Annotated[list[ClockTime], AfterValidator(_distinct_sorted)] = Field(
        default_factory=lambda: ["08:00", "20:00"], min_length=1, max_length=24,
        description="engineering shift changes, site time")
    handover: HandoverSpec = Field(default_factory=HandoverSpec)

    @property
    def shift_times(self) -> list[time]:
        return [clock_time(s) for s in self.shifts]


def load_reports(conn: psycopg.Connection[Any], site_id: str, spec: ReportsSpec, *,
                 now: datetime) -> None:
    """Store a site's `reports:` section (the loader of the site-file section)."""
    conn.execute(
        "INSERT INTO report_settings (site_id, settings, updated_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (site_id) DO UPDATE SET settings = EXCLUDED.settings,"
        " updated_at = EXCLUDED.updated_at WHERE report_settings.settings <> EXCLUDED.settings",
        (site_id, Jsonb(spec.model_dump(mode="json", exclude_unset=True)), now))


def site_settings(conn: psycopg.Connection[Any], site_id: str) -> ReportsSpec:
    """A site's reports settings (the defaults when its file has no `reports:` section)."""
    row = one(conn, "SELECT settings FROM report_settings WHERE site_id = %s", (site_id,))
    return ReportsSpec.model_validate(row["settings"] if row else {})
