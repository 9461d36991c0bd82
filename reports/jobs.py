"""The rules worker's report jobs: the weekly reports and the handover sheets."""

from __future__ import annotations

from caretaker.scheduler import Job
from reports import handover, store

WEEKLY_EVERY = 60.0  # seconds: a report is made within a minute of its time
HANDOVER_EVERY = 15.0


def report_jobs() -> list[Job]:
    """Jobs for stack/app.py worker_jobs (each run by one worker at a time)."""
    return [
        Job("reports-weekly", WEEKLY_EVERY, store.weekly_due),
        Job("handover-sheets", HANDOVER_EVERY, handover.tick),
    ]
