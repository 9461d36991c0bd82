"""What `up` and `status` print: where everything runs, its health, and the data arriving."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil

from caretaker.settings import Settings
from stack.files import StackFiles, files, read_state, supervisor_pid

# The demo's login for people (made by stack/bootstrap.py beside the example site).
DEMO_USER = "demo"
DEMO_ROLE = "supervisor"
DEMO_SITE = "riverside"


def demo_login_file(paths: StackFiles) -> Path:
    """Where the demo user's password is kept (mode 600)."""
    return paths.root / "demo-password"


def api_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    return f"http://{host}:{settings.api_port}/api/v1"


def redact(url: str) -> str:
    """A URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def health(settings: Settings, timeout: float = 2.0) -> dict[str, Any] | None:
    """The API's /health answer when it answers 200, else None."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with opener.open(api_url(settings) + "/health", timeout=timeout) as r:
            return json.loads(r.read()) if r.status == 200 else None
    except (OSError, ValueError):
        return None


def banner(settings: Settings, state: dict[str, Any], *, token: str | None) -> str:
    """What `up` prints once the stack is ready: where everything is, and a token."""
    paths = files(settings)
    lines = [f"Caretaker is up (state: {paths.root})",
             f"  API        {state['api_url']}   docs: {state['api_url']}/docs",
             f"  MQTT       {state['mqtt_url']}",
             f"  database   {state['database']}",
             f"  logs       {state['logs']}"]
    if token:
        lines += [f"Admin token (kept in {paths.token}):", token]
    demo_file = demo_login_file(paths)
    if state.get("demo") and demo_file.exists():
        console = state["api_url"].removesuffix("/api/v1") + "/"
        lines += [f"Demo login at {console} (password kept in {demo_file}):",
                  f"  user {DEMO_USER}   password {demo_file.read_text().strip()}"]
    lines.append("Stop with Ctrl-C or `caretaker down`; see `caretaker status`.")
    return "\n".join(lines)


def status(settings: Settings) -> str:
    """A readable account of what runs where, and of the data arriving."""
    paths = files(settings)
    pid = supervisor_pid(paths)
    state = read_state(paths) if pid is not None else {}
    lines = []
    if pid is None:
        lines.append(f"Caretaker is not running under {paths.root} (start it with "
                     "`caretaker up`)")
    else:
        started = state.get("started_at", "?")
        mode = "demo" if state.get("demo") else "stack"
        lines.append(f"Caretaker {mode} running under {paths.root}: supervisor pid {pid}, "
                     f"since {started}")
        servers, children = state.get("servers", {}), state.get("children", {})
        for name, info in servers.items():  # Mosquitto is also a supervised child
            where = f"127.0.0.1:{info['port']}"
            lines.append(f"  {name:<10} {_alive(info.get('pid'))}{_restarts(children.get(name))}"
                         f"  {where}")
        lines.append(f"  {'mqtt':<10} {state.get('mqtt_url')}")
        lines.append(f"  {'database':<10} {state.get('database')}")
        for name, info in children.items():
            if name not in servers:
                lines.append(f"  {name:<10} {_alive(info.get('pid'))}{_restarts(info)}"
                             f"  log {info['log']}")
    answer = health(settings)
    api = api_url(settings)
    if answer is None:
        lines.append(f"  {'health':<10} {api}/health: not answering")
    else:
        lines.append(f"  {'health':<10} {api}/health: {answer.get('status')} (database "
                     f"{'ok' if answer.get('database') else 'DOWN'}, broker "
                     f"{'ok' if answer.get('broker') else 'DOWN'})")
    if pid is not None or settings.database_url:
        lines += _data_lines(settings)
    return "\n".join(lines)


def _restarts(child: dict[str, Any] | None) -> str:
    return f", {child['restarts']} restart(s)" if child and child.get("restarts") else ""


def _alive(pid: int | None) -> str:
    if pid is None:
        return "stopped   "
    return f"pid {pid:<6}" if psutil.pid_exists(pid) else f"DEAD ({pid})"


def _data_lines(settings: Settings) -> list[str]:
    """Row counts that show data arriving (or a reason they cannot be read)."""
    from caretaker.db import connect

    try:
        url = settings.db_url()
    except RuntimeError:
        return []
    try:
        with connect(url, connect_timeout=3) as conn:
            conn.execute("SET statement_timeout = '10s'")

            def one(query: str) -> dict[str, Any]:
                row: Any = conn.execute(query).fetchone()
                return dict(row)

            t = one("SELECT count(*) AS n, max(time) AS last,"
                    " count(*) FILTER (WHERE time > now() - interval '1 minute') AS recent"
                    " FROM telemetry_points")
            s = one("SELECT count(*) AS n, max(time) AS last FROM scans")
            d = one("SELECT count(*) AS n FROM dead_letters")
            v = one("SELECT count(*) AS n, count(*) FILTER (WHERE online) AS online FROM devices")
            sites = one("SELECT count(*) AS n FROM sites")
    except Exception as exc:
        return [f"Data: database not reachable ({str(exc).splitlines()[0]})"]
    return [
        "Data:",
        f"  telemetry rows   {t['n']:,} ({t['recent']:,} in the last minute; "
        f"last at {_when(t['last'])})",
        f"  scans            {s['n']:,} (last at {_when(s['last'])})",
        f"  dead letters     {d['n']:,}",
        f"  devices          {v['n']:,} in {sites['n']} site(s), {v['online']:,} online",
    ]


def _when(ts: datetime | None) -> str:
    if ts is None:
        return "-"
    age = (datetime.now(UTC) - ts).total_seconds()
    return f"{ts.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC, {age:.0f}s ago"
