"""`caretaker up / status / demo / down` as a user runs them: real subprocesses, real servers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from caretaker.backoff import backoff
from caretaker.servers import free_port
from stack.status import redact
from tests.waiting import wait_until

CLI = [sys.executable, "-m", "stack.cli"]


@pytest.fixture
def stack_env() -> Iterator[dict[str, str]]:
    """Environment for a stack of its own: a state dir the postgres user can reach, free ports."""
    state = Path(tempfile.mkdtemp(prefix="caretaker-stack-"))
    os.chmod(state, 0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARETAKER_")}
    env.update(CARETAKER_STATE_DIR=str(state), CARETAKER_API_PORT=str(free_port()),
               CARETAKER_MQTT_PORT=str(free_port()), CARETAKER_DB_PORT=str(free_port()))
    yield env
    if processes_of(state):  # a failed test must not leave servers running
        subprocess.run([*CLI, "down"], env=env, capture_output=True, timeout=120)
    shutil.rmtree(state, ignore_errors=True)


def run(env: dict[str, str], *args: str, timeout: float = 200) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


def processes_of(state: Path) -> list[tuple[int, str]]:
    """Processes whose command line or environment mentions the state directory (via /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(state) in cmd or str(state) in environ:
            found.append((int(entry.name), cmd))
    return found


def get(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def api(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['CARETAKER_API_PORT']}/api/v1"


def state_of(env: dict[str, str]) -> dict[str, Any]:
    try:
        return json.loads((Path(env["CARETAKER_STATE_DIR"]) / "stack.json").read_text())
    except (OSError, ValueError):
        return {}


def test_up_health_status_down_leaves_no_process(stack_env: dict[str, str]) -> None:
    state = Path(stack_env["CARETAKER_STATE_DIR"])
    up = run(stack_env, "up", "--detach")
    assert up.returncode == 0, up.stdout + up.stderr
    token = up.stdout.strip().splitlines()[-2]
    assert token.startswith("ct_") and " " not in token
    assert api(stack_env) in up.stdout and f"mqtt://127.0.0.1:{stack_env['CARETAKER_MQTT_PORT']}" \
        in up.stdout

    code, body = get(api(stack_env) + "/health")
    assert (code, body) == (200, {"status": "ok", "database": True, "broker": True})
    token_file = state / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().strip() == token
    assert get(api(stack_env) + "/sites", token)[0] == 200
    assert get(api(stack_env) + "/sites", "ct_wrong")[0] == 401

    status = run(stack_env, "status")
    assert status.returncode == 0
    assert "health" in status.stdout and ": ok (database ok, broker ok)" in status.stdout
    assert "telemetry rows" in status.stdout and "dead letters" in status.stdout
    assert processes_of(state)

    again = run(stack_env, "up", "--detach")
    assert again.returncode == 1 and "already running" in again.stderr

    down = run(stack_env, "down", timeout=120)
    assert down.returncode == 0, down.stderr
    assert processes_of(state) == []
    assert "not running" in run(stack_env, "status").stdout
    stopped = run(stack_env, "load", "--example", timeout=60)
    assert stopped.returncode == 1 and "start the stack with `caretaker up`" in stopped.stderr
    # a second `up` reuses the cluster and the admin token
    up2 = run(stack_env, "up", "--detach")
    assert up2.returncode == 0, up2.stderr
    assert up2.stdout.strip().splitlines()[-2] == token
    assert run(stack_env, "down", timeout=120).returncode == 0
    assert processes_of(state) == []


def test_foreground_up_restarts_a_dead_child_and_stops_on_ctrl_c(
        stack_env: dict[str, str]) -> None:
    state = Path(stack_env["CARETAKER_STATE_DIR"])
    proc = subprocess.Popen([*CLI, "up"], env=stack_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        ready = wait_until(lambda: state_of(stack_env).get("ready") and state_of(stack_env),
                           120, "the stack to be ready", every=0.2)
        api_pid = ready["children"]["api"]["pid"]
        os.kill(api_pid, signal.SIGKILL)
        restarted = wait_until(lambda: state_of(stack_env)["children"]["api"]["restarts"] == 1
                               and state_of(stack_env), 30, "the api to be restarted", every=0.2)
        assert restarted["children"]["api"]["pid"] != api_pid
        wait_until(lambda: health_code(api(stack_env)) == 200, 60, "the API's health", every=0.2)
        # Mosquitto is a supervised child like the others
        broker_pid = ready["children"]["mosquitto"]["pid"]
        assert ready["servers"]["mosquitto"]["pid"] == broker_pid
        os.kill(broker_pid, signal.SIGKILL)
        wait_until(lambda: state_of(stack_env)["children"]["mosquitto"]["restarts"] == 1,
                   30, "Mosquitto to be restarted", every=0.2)
        wait_until(lambda: get(api(stack_env) + "/health") == (
            200, {"status": "ok", "database": True, "broker": True}), 60,
            "the API to see the broker again", every=0.2)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "Admin token" in out and "restarting in" in out and "stopped" in out
    assert "mosquitto exited with -9" in out and "api exited with -9" in out
    assert processes_of(state) == []


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaped counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def health_code(url: str) -> int:
    try:
        return get(url + "/health")[0]
    except OSError:  # not listening (yet)
        return 0


def test_demo_and_down_after_the_supervisor_was_killed(stack_env: dict[str, str]) -> None:
    state = Path(stack_env["CARETAKER_STATE_DIR"])
    demo = run(stack_env, "demo", "--detach", "--history", "2h")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    token = (state / "admin-token").read_text().strip()
    code, sites = get(api(stack_env) + "/sites", token)
    assert code == 200 and [s["id"] for s in sites["items"]] == ["riverside"]
    code, devices = get(api(stack_env) + "/devices?site=riverside", token)
    assert devices["total"] == 21
    # the history goes in through the broker first, then the live simulator starts
    wait_until(lambda: state_of(stack_env).get("backfill") == "done"
               and "simulate" in state_of(stack_env)["children"], 120, "the live simulator")
    children = state_of(stack_env)["children"]
    assert {"rules", "api"} <= set(children)
    assert {"mosquitto", "simulate"} <= set(children)
    code, runs = get(api(stack_env) + "/runs?site=riverside&limit=1000", token)
    starts = [r["planned_start"] for r in runs["items"]]
    history = datetime.now(UTC) - timedelta(hours=2, minutes=1)
    assert starts and min(datetime.fromisoformat(t) for t in starts) >= history
    code, status = get(api(stack_env) + "/sites/riverside/patrol-status", token)
    assert status["open_gap_count"] < 10  # not hundreds of runs "missed" before the site

    supervisor = state_of(stack_env)["supervisor_pid"]
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: gone(supervisor), 10, "the supervisor to die")
    assert processes_of(state)  # the database outlives a killed supervisor ...
    down = run(stack_env, "down", timeout=120)
    assert down.returncode == 0, down.stderr
    assert processes_of(state) == []  # ... and `down` finds them all


def test_port_in_use_is_a_clear_error(stack_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        stack_env["CARETAKER_API_PORT"] = str(taken.getsockname()[1])
        out = run(stack_env, "up", timeout=60)
    assert out.returncode == 1
    assert f"port {stack_env['CARETAKER_API_PORT']} (API) is already in use" in out.stderr
    assert "CARETAKER_API_PORT" in out.stderr and "Traceback" not in out.stderr
    state = Path(stack_env["CARETAKER_STATE_DIR"])
    # at once: refused before anything was started (no database cluster was even made)
    assert not (state / "pg" / "data" / "PG_VERSION").exists()
    assert processes_of(state) == []


def test_external_needs_both_urls(stack_env: dict[str, str]) -> None:
    out = run(stack_env, "up", "--external", timeout=60)
    assert out.returncode == 1
    assert "CARETAKER_DATABASE_URL" in out.stderr and "CARETAKER_MQTT_URL" in out.stderr


def test_without_a_database_the_message_says_what_to_run(stack_env: dict[str, str]) -> None:
    out = run(stack_env, "load", "--example", timeout=60)
    assert out.returncode == 1
    assert "caretaker up" in out.stderr and "CARETAKER_DATABASE_URL" in out.stderr
    assert "Traceback" not in out.stderr


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff(n) for n in (0, 1, 2, 3, 4)] == [0.0, 0.5, 1.0, 2.0, 4.0]
    assert backoff(50) == 30.0 and backoff(10_000) == 30.0
    assert backoff(3, first=1.0, cap=3.0) == 3.0


def test_redact_hides_the_password() -> None:
    assert redact("postgresql://u:secret@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redact("mqtt://broker:1883") == "mqtt://broker:1883"


def test_state_dir_the_postgres_user_cannot_reach_is_a_clear_error(
        stack_env: dict[str, str], tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o700)
    stack_env["CARETAKER_STATE_DIR"] = str(tmp_path / "state")
    out = run(stack_env, "up", timeout=60)
    if os.geteuid() == 0:  # PostgreSQL runs as `postgres` only when we are root
        assert out.returncode == 1
        assert "the postgres user cannot enter /tmp/" in out.stderr  # the first 0700 ancestor
        assert "(mode 700)" in out.stderr
        assert "CARETAKER_STATE_DIR" in out.stderr and "Traceback" not in out.stderr
    else:
        assert run(stack_env, "down", timeout=120).returncode == 0
    assert processes_of(tmp_path / "state") == []
