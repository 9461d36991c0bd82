"""The KPI library: each KPI of DESIGN.md's table is one function over a site and a period in
the site's time zone, used alike by the API, the reports, the console and the dashboards."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg

# The KPI names, as the API answers them (`GET /api/v1/kpis`), in the order reports show them.
NAMES = ("repair_timeliness", "response_timeliness", "mtta_seconds", "mttr_seconds",
         "followup_rate", "satisfaction", "complaint_handling", "equipment_intact",
         "patrol_completion", "inspection_completion", "backlog", "repeat_faults",
         "mtbf_seconds")


@dataclass(frozen=True)
class Kpi:
    """One KPI over one period: value = numerator / denominator (None when nothing to count)."""

    value: float | None
    numerator: float | None
    denominator: float | None
    target: float | None = None
    breakdown: dict[str, Any] = field(default_factory=dict)  # per category, route, guard, ...


def compute(conn: psycopg.Connection[Any], site_id: str, start: date,
            end: date) -> dict[str, Kpi]:
    """Every KPI for a site over [start, end) (dates in the site's time zone), by name."""
    raise NotImplementedError("the KPI library is being written (issue 11)")
