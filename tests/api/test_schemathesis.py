"""Schemathesis over the whole OpenAPI, every check, with an admin and a site-scoped token.

A real uvicorn serves the app on the test's database; the schemathesis command generates
requests from /api/v1/openapi.json (valid and invalid ones) for a bounded time and checks
that no answer is a server error or undocumented (status code, content type, schema).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx

ROOT = Path(__file__).resolve().parents[2]
# Seconds of generated requests per token (the whole test stays under ~90 s).
BUDGET = float(os.environ.get("CARETAKER_SCHEMATHESIS_SECONDS", "25"))


def _seed(base: str, admin: dict[str, str]) -> None:
    """A little of everything, so reads of single records find some."""
    with httpx.Client(base_url=f"{base}/api/v1", headers=admin) as c:
        for path, body in (
            ("/sites", {"id": "s1", "name": "Site One", "timezone": "Asia/Shanghai"}),
            ("/zones", {"site_id": "s1", "id": "z1", "name": "Pump room"}),
            ("/device-types", {"id": "pump", "name": "Pump",
                               "metrics": {"pressure": {"unit": "MPa"}}}),
            ("/devices", {"site_id": "s1", "id": "d1", "name": "Pump 1", "type_id": "pump",
                          "zone_id": "z1"}),
            ("/guards", {"site_id": "s1", "id": "g1", "name": "Guard One"}),
            ("/checkpoints", {"site_id": "s1", "id": "c1", "name": "Gate", "tag": "T1"}),
        ):
            r = c.post(path, json=body)
            assert r.status_code == 201, (path, r.text)


def _run(base: str, token: dict[str, str], report: Path) -> tuple[int, str]:
    cli = Path(sys.executable).parent / "schemathesis"
    out = subprocess.run(
        [str(cli), "--config-file", str(Path(__file__).with_name("schemathesis.toml")),
         "run", f"{base}/api/v1/openapi.json", "--checks", "all",
         # POST /scans answers an offline batch item by item (202), and a refused item keeps
         # its scan_id so the phone can drop it from its queue; the stateful phase infers a
         # link from that id to PUT /scans/{scan_id}/photo and calls the right 404 "created
         # resource not found". Its per-operation switch in schemathesis.toml is not applied
         # in the stateful phase (tried: the check still ran), so it is left out of the run.
         "--exclude-checks", "ensure_resource_availability",
         "-H", f"Authorization: {token['Authorization']}",
         "--max-time", str(int(BUDGET)), "--max-examples", "25", "--seed", "1",
         "--workers", "1", "--request-timeout", "20", "--no-color",
         "--report", "junit", "--report-junit-path", str(report),
         "--warnings", "off"],
        capture_output=True, text=True, timeout=BUDGET + 120, cwd=report.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    return out.returncode, out.stdout + out.stderr


def test_schemathesis_finds_no_server_error_and_nothing_undocumented(
        served: str, make_token: Callable[..., dict[str, str]], tmp_path: Path) -> None:
    admin = make_token("admin")
    _seed(served, admin)
    failures = []
    for label, token in (("admin", admin), ("site-scoped", make_token("supervisor", site="s1"))):
        code, output = _run(served, token, tmp_path / f"{label}.xml")
        (tmp_path / f"{label}.txt").write_text(output)
        if code != 0:
            failures.append(f"--- with the {label} token ---\n{output[-20000:]}")
    assert not failures, "\n".join(failures)
