"""Site-configuration loaders for the `routes:` and `schedules:` sections (`caretaker load`).

Shapes (durations: "20m", "2h", "1h30m", "90s" or seconds; times: "HH:MM", quoted):

    routes:
      - id: night-perimeter
        name: Night perimeter patrol
        ordered: true            # false: any order
        min_duration: 20m        # a run walked faster than this is flagged too_short
        grace: 30m               # how far outside a window a scan still counts (early/late)
        lone_worker: 30m         # optional: no scan this long during a run raises a gap
        steps:
          - {checkpoint: cp-gate-main, offset: 0m, tolerance: 5m}
          - {checkpoint: cp-perimeter-n, offset: 10m, tolerance: 5m}
    schedules:
      - id: night-perimeter-2h
        route: night-perimeter
        guard: g-zhang           # or post: patrol-night (any guard of that post)
        kind: every              # daily | every | weekly | monthly
        every: 2h
        window: {start: "20:00", end: "06:00"}   # may cross midnight; end excluded
        weekdays: [mon, tue]     # optional for daily/every, required for weekly
        at: ["09:00"]            # daily, weekly, monthly
        monthly: {day: 1}        # or {day: -1} (last day) or {nth: -1, weekday: fri}
        start_tolerance: 5m      # optional; default: the route's earliest window end
        effective_from: 2026-11-01
        effective_until: 2027-12-31   # optional
        enabled: true

Ordered steps are due at start + offset, on time within ± tolerance. In an any-order route
a step's offset is its deadline: on time from start − tolerance to start + offset + tolerance.
Loading the same file again changes nothing; a changed definition re-plans runs not yet
started and keeps the history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator

from caretaker.site_config import unique_ids
from rules.patrol.model import PatrolConfigError, Route, Schedule
from rules.patrol.store import Conn, upsert_route, upsert_schedule

Routes = Annotated[list[Route], AfterValidator(unique_ids)]
Schedules = Annotated[list[Schedule], AfterValidator(unique_ids)]


def _own_site(site_id: str, given: str | None, what: str) -> None:
    if given is not None and given != site_id:
        raise PatrolConfigError(f"{what}: site_id {given!r} is not this file's site {site_id!r}")


def load_routes(conn: Conn, site_id: str, routes: list[Route], *, now: datetime) -> None:
    """Upsert the site's routes by id (checkpoints must already be loaded)."""
    for route in routes:
        _own_site(site_id, route.site_id, f"route {route.id}")
        upsert_route(conn, site_id, route, now=now)


def load_schedules(conn: Conn, site_id: str, schedules: list[Schedule], *,
                   now: datetime) -> None:
    """Upsert the site's schedules by id (their routes and guards must already exist)."""
    for sched in schedules:
        _own_site(site_id, sched.site_id, f"schedule {sched.id}")
        upsert_schedule(conn, site_id, sched, now=now)
