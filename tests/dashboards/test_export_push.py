"""`caretaker dashboards export` writes Grafana's provisioning layout, byte-identical on a second
export, with no secret in it and JSON the pinned SDK reads back; `push` sends the folder, the
datasource and the dashboards to Grafana's HTTP API (a local recording server: Grafana's own
acceptance cannot be run here), creating on the first push and updating on the second."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.boards import BUILDERS, DashboardModel
from dashboards.provisioning import PASSWORD_ENV, Target
from dashboards.push import PushError, push
from dashboards.sqlquery import DATASOURCE_UID, PLUGIN, variant_config

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-reader-pw"
TOKEN = "glsa_test_token"


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stack.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_export_layout_is_stable_and_holds_no_secret(tmp_path: Path) -> None:
    env = {"CARETAKER_GRAFANA_DB_ADDRESS": "db.example:5433/caretaker", PASSWORD_ENV: SECRET}
    first = cli("dashboards", "export", str(tmp_path), **env)
    assert first.returncode == 0, first.stderr
    files = snapshot(tmp_path)
    assert set(files) == {"provisioning/datasources/caretaker.yaml",
                          "provisioning/dashboards/caretaker.yaml",
                          *(f"dashboards/{name}.json" for name in BUILDERS)}
    again = cli("dashboards", "export", str(tmp_path), **env)
    assert again.returncode == 0, again.stderr
    assert snapshot(tmp_path) == files  # byte-identical
    assert not any(SECRET.encode() in body for body in files.values())

    ds = yaml.safe_load(files["provisioning/datasources/caretaker.yaml"])["datasources"][0]
    assert ds["type"] == PLUGIN and ds["uid"] == DATASOURCE_UID
    assert ds["jsonData"]["timescaledb"] is True and ds["jsonData"]["database"] == "caretaker"
    assert ds["url"] == "db.example:5433" and ds["user"] == "caretaker_reader"
    assert ds["jsonData"]["sslmode"] == "require"  # not on this machine: encrypted
    assert ds["secureJsonData"]["password"] == f"${PASSWORD_ENV}"
    provider = yaml.safe_load(files["provisioning/dashboards/caretaker.yaml"])["providers"][0]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == str((tmp_path / "dashboards").resolve())


def test_dashboards_are_valid_for_the_pinned_sdk(tmp_path: Path) -> None:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.cog.runtime import register_dataquery_variant

    register_default_plugins()
    register_dataquery_variant(variant_config())
    result = cli("dashboards", "export", str(tmp_path),
                 CARETAKER_GRAFANA_DB_ADDRESS="127.0.0.1:5433/caretaker")
    assert result.returncode == 0, result.stderr
    uids = set()
    for path in sorted((tmp_path / "dashboards").glob("*.json")):
        data = json.loads(path.read_text())
        assert data["schemaVersion"] == DashboardModel().schema_version
        # read back by the SDK's own model and written again: nothing lost or unknown
        again = json.loads(JSONEncoder(sort_keys=True).encode(DashboardModel.from_json(data)))
        assert again == data, path.name
        uids.add(data["uid"])
        for panel in data["panels"]:
            assert panel["targets"], panel["title"]
            for t in panel["targets"]:
                assert t["datasource"] == {"type": PLUGIN, "uid": DATASOURCE_UID}
                assert t["rawSql"] and t["format"] in ("table", "time_series")
    assert uids == {"caretaker-fleet", "caretaker-device", "caretaker-work-orders",
                    "caretaker-patrol", "caretaker-kpis"}


class Grafana(BaseHTTPRequestHandler):
    """Records requests; answers like Grafana: 404 for what was not created yet."""

    log: list[tuple[str, str, str | None, Any]] = []
    created: set[str] = set()

    def _answer(self, body: Any) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        sent = json.loads(self.rfile.read(length)) if length else None
        self.log.append((self.command, self.path, self.headers.get("Authorization"), sent))
        status = 200
        if self.command == "GET" and self.path not in self.created:
            status = 404
        if self.command == "POST" and self.path == "/api/folders":
            self.created.add(f"/api/folders/{sent['uid']}")
        if self.command == "POST" and self.path == "/api/datasources":
            self.created.add(f"/api/datasources/uid/{sent['uid']}")
        data = json.dumps(body if status == 200 else {"message": "not found"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._answer({"ok": True})

    do_POST = do_PUT = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def grafana() -> Iterator[str]:
    Grafana.log, Grafana.created = [], set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Grafana)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_push_creates_then_updates(grafana: str) -> None:
    done = push(grafana, TOKEN, Target("db.local", 5432, "caretaker"), SECRET)
    assert done[:2] == ["folder caretaker created", "datasource caretaker-timescaledb created"]
    first = list(Grafana.log)
    assert [(m, p) for m, p, _, _ in first[:4]] == [
        ("GET", "/api/folders/caretaker"), ("POST", "/api/folders"),
        ("GET", "/api/datasources/uid/caretaker-timescaledb"), ("POST", "/api/datasources")]
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth, _ in first)
    ds = first[3][3]
    assert ds["uid"] == DATASOURCE_UID and ds["jsonData"]["timescaledb"] is True
    assert ds["secureJsonData"] == {"password": SECRET} and ds["user"] == "caretaker_reader"
    saved = [body for m, p, _, body in first if (m, p) == ("POST", "/api/dashboards/db")]
    assert len(saved) == 5 and all(b["overwrite"] and b["folderUid"] == "caretaker"
                                   for b in saved)

    # the second push, through the CLI: the same uids, the datasource updated in place
    Grafana.log.clear()
    result = cli("dashboards", "push", "--url", grafana, CARETAKER_GRAFANA_TOKEN=TOKEN,
                 CARETAKER_GRAFANA_DB_ADDRESS="db.local:5432/caretaker",
                 **{PASSWORD_ENV: SECRET})
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    second = [(m, p) for m, p, _, _ in Grafana.log]
    assert second[:3] == [("GET", "/api/folders/caretaker"),
                          ("GET", "/api/datasources/uid/caretaker-timescaledb"),
                          ("PUT", "/api/datasources/uid/caretaker-timescaledb")]
    again = [body for m, p, _, body in Grafana.log if (m, p) == ("POST", "/api/dashboards/db")]
    assert [b["dashboard"]["uid"] for b in again] == [b["dashboard"]["uid"] for b in saved]
    assert again == saved


def test_push_says_what_grafana_refused() -> None:
    class Refuse(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(401)
            self.send_header("Content-Length", "27")
            self.end_headers()
            self.wfile.write(b'{"message":"invalid token"}')

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(PushError, match="401.*invalid token"):
            push(f"http://127.0.0.1:{server.server_address[1]}", TOKEN,
                 Target("db", 5432, "caretaker"), SECRET)
        result = cli("dashboards", "push", "--url", "http://127.0.0.1:9")  # no token
        assert result.returncode == 1 and "CARETAKER_GRAFANA_TOKEN" in result.stderr
    finally:
        server.shutdown()
        server.server_close()
