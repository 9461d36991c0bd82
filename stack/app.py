"""The composition root: what runs, which jobs, which routes, which site-file sections.

Every other package is assembled here and nowhere else (as alertmanager's app.go does):
`caretaker/` is the core at the bottom and imports nothing above it; `ingest/`, `tickets/`,
`rules/`, `api/`, `simulators/` and `dashboards/` know only what is below them. The layers are
an import-linter contract in pyproject.toml, checked by the test suite.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg
from fastapi import APIRouter, FastAPI

from api.app import create_app
from api.console import routes as console
from api.routes import (
    alarms,
    attachments,
    checkpoints,
    complaints,
    dead_letters,
    device_status,
    device_types,
    devices,
    escalation,
    follow_ups,
    gaps,
    guards,
    handovers,
    health,
    kpis,
    maintenance_windows,
    patrol_routes,
    patrol_status,
    reports,
    runs,
    scans,
    schedules,
    sites,
    telemetry,
    work_orders,
    zones,
)
from api.routes import rules as rule_routes
from caretaker.clock import Clock, system_clock
from caretaker.retention import apply_retention, compaction_job
from caretaker.scheduler import Job
from caretaker.settings import Settings, get_settings
from caretaker.site_config import LoadResult, Section, load_site_config
from ingest.store import MetricsProvider
from reports.jobs import report_jobs
from reports.settings import ReportsSpec, load_reports
from reports.targets import KpiTargets, save_targets
from rules import config as rule_config
from rules.catalog import watched_metrics
from rules.engine import rule_jobs
from rules.patrol import config as patrol_config
from rules.patrol.engine import patrol_jobs
from rules.rollups import rollup_jobs
from tickets import follow_up_policy, outbox
from tickets.escalation import EscalationSpec, escalate_due, save_ladder
from tickets.notification_policy import NotificationsSpec, save_spec
from tickets.policy import PolicySpec

# The processes `caretaker up` supervises (each a `caretaker <args>` command), in start order.
PROCESSES: tuple[tuple[str, ...], ...] = (("ingest",), ("rules",), ("api",))
DEMO_PROCESSES: tuple[tuple[str, ...], ...] = (("simulate",),)

# Site-file sections beyond the registry, in the order they are applied: each the type its
# content validates as (the API takes the same models) and its loader.
SECTIONS: Mapping[str, Section] = {
    "rules": Section(rule_config.Rules, rule_config.load_rules),
    "maintenance_windows": Section(rule_config.Windows, rule_config.load_maintenance_windows),
    "work_order_policy": Section(PolicySpec, rule_config.load_work_order_policy),
    "follow_up_policy": Section(follow_up_policy.FollowUpPolicy, follow_up_policy.save_policy),
    "routes": Section(patrol_config.Routes, patrol_config.load_routes),
    "schedules": Section(patrol_config.Schedules, patrol_config.load_schedules),
    "reports": Section(ReportsSpec, load_reports),
    "kpi_targets": Section(KpiTargets, save_targets),
    "notifications": Section(NotificationsSpec, save_spec),
    "escalation": Section(EscalationSpec, save_ladder),
}

# The API's routers, mounted under /api/v1 in this order.
ROUTERS: tuple[APIRouter, ...] = (
    health.router, sites.router, zones.router, device_types.router, devices.router,
    guards.router, checkpoints.router, patrol_routes.router, schedules.router, scans.router,
    runs.router, gaps.router, patrol_status.router, telemetry.router, dead_letters.router,
    alarms.router, work_orders.router, maintenance_windows.router, rule_routes.router,
    reports.router, handovers.router,
    kpis.router,
    complaints.router,
    escalation.router,
    device_status.router,
    follow_ups.router, attachments.router,
)

# The people's pages (the staff console), served at the root.
PAGES: tuple[APIRouter, ...] = (console.router,)


def ingest_event_metrics() -> MetricsProvider:
    """What `caretaker ingest` gives its workers: the metrics whose readings rules watch."""
    return watched_metrics


def load_site(conn: psycopg.Connection[Any], doc: Any, *, now: datetime) -> LoadResult:
    """Apply a whole site configuration document (registry and every section)."""
    return load_site_config(conn, doc, now=now, sections=SECTIONS)


def worker_jobs(settings: Settings) -> list[Job]:
    """The periodic jobs of `caretaker rules`: retention, patrol, rules and tickets."""
    return [
        Job("retention", 3600, lambda conn, now: apply_retention(
            conn, days=settings.retention_days, now=now,
            dead_letter_days=settings.dead_letter_retention_days)),
        # Compact telemetry: rebuild the index of chunks no longer written, in its own thread.
        Job("telemetry-compaction", 3600, compaction_job(settings.db_url)),
        *patrol_jobs(settings),
        *rule_jobs(settings),
        *rollup_jobs(settings),
        # Tickets: deadlines climb the escalation ladder; the outbox is sent in its own thread.
        Job("tickets-escalation", 1.0, escalate_due),
        Job("tickets-notifications", 1.0, outbox.delivery_job(settings)),
        *report_jobs(),
    ]


def api(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    """The API application with every router."""
    return create_app(settings or get_settings(), routers=ROUTERS, pages_routers=PAGES,
                      clock=clock)
