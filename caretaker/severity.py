"""Alarm severities, worst first; shared by rules (alarms) and tickets (priorities)."""

from __future__ import annotations

from typing import Literal

SEVERITIES = ("critical", "major", "minor", "warning")
SEVERITY_RANK = {s: i for i, s in enumerate(reversed(SEVERITIES))}  # warning 0 .. critical 3
Severity = Literal["critical", "major", "minor", "warning"]
