"""A stack's run files (lock, pid, state, admin token, logs) and the processes that belong to it."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

from caretaker.servers import LocalPostgres
from caretaker.settings import Settings

# Set in the environment of every process the supervisor starts, so `down` can find them all.
MARKER = "CARETAKER_STACK"


class StackError(RuntimeError):
    """The stack cannot start or stop; the message says what to do about it."""


@dataclass(frozen=True)
class StackFiles:
    """Where a stack keeps its run-time files."""

    root: Path

    @property
    def lock(self) -> Path:
        return self.root / "supervisor.lock"

    @property
    def pid(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def state(self) -> Path:
        return self.root / "stack.json"

    @property
    def token(self) -> Path:
        return self.root / "admin-token"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


def files(settings: Settings) -> StackFiles:
    return StackFiles(settings.state_dir.resolve())


@contextmanager
def lock(paths: StackFiles) -> Iterator[IO[str] | None]:
    """Hold the supervisor lock while inside; yields None when another supervisor holds it."""
    paths.root.mkdir(parents=True, exist_ok=True)
    handle = open(paths.lock, "a+")  # noqa: SIM115 - closed below
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield handle
    finally:
        handle.close()


def supervisor_pid(paths: StackFiles) -> int | None:
    """The pid of the running supervisor of this state directory, or None."""
    if not paths.lock.exists():
        return None
    with lock(paths) as held:
        if held is not None:
            return None
    try:
        return int(paths.pid.read_text().strip())
    except (OSError, ValueError):
        return None


def read_state(paths: StackFiles) -> dict[str, Any]:
    """The supervisor's description of the running stack ({} when none)."""
    try:
        return json.loads(paths.state.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}


def write_state(paths: StackFiles, state: dict[str, Any]) -> None:
    """Replace the state file at once (readers never see half of it)."""
    tmp = paths.state.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(paths.state)


def read_token(paths: StackFiles) -> str | None:
    try:
        return paths.token.read_text().strip() or None
    except OSError:
        return None


def write_secret(path: Path, value: str) -> None:
    """Write a file only its owner can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.chmod(path, 0o600)


def stack_processes(root: Path) -> list[psutil.Process]:
    """Every process that belongs to the stack of this state directory (and their children)."""
    root_s = str(root)
    pg_data, mqtt_conf = str(root / "pg" / "data"), str(root / "mqtt" / "mosquitto.conf")
    found: dict[int, psutil.Process] = {}
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
        if proc.pid == me:
            continue
        cmd = " ".join(proc.info["cmdline"] or [])
        env = proc.info["environ"] or {}
        if env.get(MARKER) == root_s or pg_data in cmd or mqtt_conf in cmd:
            found[proc.pid] = proc
            try:
                for kid in proc.children(recursive=True):
                    found.setdefault(kid.pid, kid)
            except psutil.Error:
                pass
    found.pop(me, None)
    return list(found.values())


def terminate(procs: list[psutil.Process], timeout: float = 10.0) -> list[psutil.Process]:
    """SIGTERM, wait, then SIGKILL; return what still lives (should be nothing)."""
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(alive, timeout=5)
    return list(alive)


def postmaster_pid(pg: LocalPostgres) -> int | None:
    """The pid of the embedded PostgreSQL when it runs, else None."""
    try:
        pid = int((pg.data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if psutil.pid_exists(pid) else None
