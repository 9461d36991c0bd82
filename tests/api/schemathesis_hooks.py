"""Loaded by the schemathesis command that tests/api/test_schemathesis.py runs.

urllib3-future (pulled in by grafana-client, which issue 9 removes) overwrites the venv's
urllib3 at every interpreter start; schemathesis counts urllib3's connection pools to decide
whether to resend a request a server dropped on a kept-alive connection, and the replacement's
pool container cannot be counted. Counting nothing keeps that resend; the requests and the
checks are unchanged. Harmless (and unused) with the real urllib3.
"""

from __future__ import annotations

from typing import Any

from schemathesis.transport import requests as transport

_count = transport._count_opened_connections


def _count_or_zero(session: Any) -> int:
    try:
        return _count(session)
    except AttributeError:
        return 0


transport._count_opened_connections = _count_or_zero
