"""Create or update the datasource and the dashboards in a running Grafana through its HTTP
API (a service-account token), with the project's HTTP client; stable uids make a second push
an update."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2 as httpx  # httpx2: the maintained httpx line (starlette needs it too)

from caretaker.errors import Invalid
from dashboards.provisioning import FOLDER, FOLDER_UID, Target, dashboards_for_api, datasource
from dashboards.sqlquery import DATASOURCE_UID

TIMEOUT = 15.0


class PushError(Invalid):
    """Grafana refused a request; the message says which and why (never the token)."""


def _check(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code >= 400:
        raise PushError(f"{what}: Grafana answered {response.status_code} "
                        f"{response.text[:300]}")
    return response


def push(url: str, token: str, target: Target, password: str, *,
         transport: httpx.BaseTransport | None = None,
         progress: Callable[[str], None] = lambda _: None) -> list[str]:
    """Push the folder, the datasource and every dashboard; what was done, in order."""
    if not token:
        raise Invalid("a Grafana token is needed (CARETAKER_GRAFANA_TOKEN)")
    done: list[str] = []

    def step(text: str) -> None:
        done.append(text)
        progress(text)

    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=TIMEOUT,
                      transport=transport) as client:
        folder = client.get(f"/api/folders/{FOLDER_UID}")
        if folder.status_code == 404:
            _check(client.post("/api/folders", json={"uid": FOLDER_UID, "title": FOLDER}),
                   "create the folder")
            step(f"folder {FOLDER_UID} created")
        else:
            _check(folder, "read the folder")
        body: dict[str, Any] = datasource(target, password)
        current = client.get(f"/api/datasources/uid/{DATASOURCE_UID}")
        if current.status_code == 404:
            _check(client.post("/api/datasources", json=body), "create the datasource")
            step(f"datasource {DATASOURCE_UID} created")
        else:
            _check(current, "read the datasource")
            _check(client.put(f"/api/datasources/uid/{DATASOURCE_UID}", json=body),
                   "update the datasource")
            step(f"datasource {DATASOURCE_UID} updated")
        for board in dashboards_for_api():
            _check(client.post("/api/dashboards/db", json={
                "dashboard": board, "folderUid": FOLDER_UID, "overwrite": True,
                "message": "caretaker dashboards push"}), f"save dashboard {board['uid']}")
            step(f"dashboard {board['uid']} saved")
    return done
