"""`caretaker up / down / demo`: the whole platform on one machine, supervised.

The supervisor runs in the `caretaker up` process (or in the background with --detach). It
starts the embedded PostgreSQL under the state directory and Mosquitto as a supervised child
(unless external servers are configured), prepares the database (stack/bootstrap.py), keeps
`caretaker ingest`, `rules` and `api` running, and stops everything, in reverse order, on
Ctrl-C, SIGTERM or `caretaker down`. Its run files are described in stack/files.py.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from caretaker.servers import LocalMosquitto, LocalPostgres, port_in_use
from caretaker.settings import Settings
from caretaker.supervisor import Child, Supervisor
from stack import bootstrap
from stack.app import DEMO_PROCESSES, PROCESSES
from stack.files import (
    MARKER,
    StackError,
    StackFiles,
    files,
    lock,
    postmaster_pid,
    read_state,
    read_token,
    stack_processes,
    supervisor_pid,
    terminate,
    write_state,
)
from stack.status import api_url, banner, health, redact
from stack.workers import caretaker_argv

log = logging.getLogger("stack.up")

READY_TIMEOUT = 180.0
BROKER_TIMEOUT = 20.0


# ---------------------------------------------------------------- up

@dataclass(frozen=True)
class DemoOptions:
    """What `caretaker demo` adds: history backfilled on first start, the live scenario."""

    history: timedelta = timedelta(days=7)
    scenario: str | None = None

    def args(self) -> list[str]:
        """The same options as `caretaker demo` flags (for the background supervisor)."""
        out = ["--history", f"{int(self.history.total_seconds())}s"]
        return out + (["--scenario", self.scenario] if self.scenario else [])


def up(settings: Settings, *, external: bool = False, detach: bool = False,
       background: bool = False, demo: bool = False,
       demo_options: DemoOptions | None = None) -> int:
    """Bring the stack up (and, for the demo, the example site, its history and the
    simulator)."""
    if demo and demo_options is None:
        demo_options = DemoOptions()
    if external and not (settings.database_url and settings.mqtt_url):
        raise StackError("--external needs both CARETAKER_DATABASE_URL and CARETAKER_MQTT_URL "
                         "(e.g. postgresql://user:pw@db:5432/caretaker and mqtt://broker:1883)")
    if detach:
        return _detach(settings, demo=demo_options if demo else None, external=external)
    return _supervise(settings, demo=demo_options if demo else None, show_token=not background)


def _detach(settings: Settings, *, demo: DemoOptions | None, external: bool) -> int:
    """Start the supervisor in the background; return once it reports the API healthy."""
    paths = files(settings)
    running = supervisor_pid(paths)
    if running is not None:
        raise StackError(f"Caretaker is already running under {paths.root} (supervisor pid "
                         f"{running}): see `caretaker status`, or stop it with `caretaker down`")
    paths.logs.mkdir(parents=True, exist_ok=True)
    log_path = paths.logs / "supervisor.log"
    args = (["demo", *demo.args()] if demo else ["up"]) + ["--supervised"] \
        + (["--external"] if external else [])
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(caretaker_argv(*args),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                env={**os.environ, "CARETAKER_STATE_DIR": str(paths.root)})
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_bytes()[offset:].decode(errors="replace").strip()
            print(tail or f"the supervisor exited with {proc.returncode}", file=sys.stderr)
            return proc.returncode or 1
        state = read_state(paths)
        if state.get("supervisor_pid") == proc.pid and state.get("ready"):
            print(banner(settings, state, token=read_token(paths)))
            return 0
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    raise StackError(f"the stack did not become ready in {READY_TIMEOUT:.0f}s; it was stopped. "
                     f"See {log_path} and the logs next to it")


def _supervise(settings: Settings, *, demo: DemoOptions | None, show_token: bool) -> int:
    """Run the stack in this process until a signal or `caretaker down` stops it."""
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    paths = files(settings)
    with lock(paths) as held:
        if held is None:
            raise StackError(f"Caretaker is already running under {paths.root} (supervisor pid "
                             f"{supervisor_pid(paths) or '?'}): see `caretaker status`, or stop "
                             "it with `caretaker down`")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda *_: stop.set())
        stack = _Stack(settings, paths, stop, demo=demo)
        try:
            stack.start()
            if stop.is_set():
                return 0
            print(banner(settings, stack.state(), token=stack.token if show_token else None),
                  flush=True)
            stack.start_demo()
            stack.run()
        finally:
            stack.stop()
    return 0


class _Stack:
    """The servers and children of one `caretaker up`, and the state file describing them."""

    def __init__(self, settings: Settings, paths: StackFiles, stop: threading.Event, *,
                 demo: DemoOptions | None) -> None:
        self.settings = settings
        self.paths = paths
        self.stop_event = stop
        self.demo = demo
        self.history_from: datetime | None = None
        self.backfill = "none"  # none | pending | running | done | failed
        self.pg = LocalPostgres(paths.root, settings.db_port) if not settings.database_url \
            else None
        self.broker = None if settings.mqtt_url else LocalMosquitto(
            paths.root, settings.mqtt_port, autosave_interval=settings.mqtt_autosave_seconds)
        self.supervisor = Supervisor([], self._child_env())
        self.broker_child: Child | None = None
        self.token: str | None = None
        self.ready = False
        self.started_at = datetime.now(UTC)
        self.started_any = False

    # -- start

    def start(self) -> None:
        self._clean_leftovers()
        self._check_ports()
        self.started_any = True
        self.paths.pid.write_text(f"{os.getpid()}\n")
        self._write_state()
        if self.pg is not None and not self.stop_event.is_set():
            log.info("starting PostgreSQL + TimescaleDB on 127.0.0.1:%d", self.pg.port)
            _check_reachable_by_postgres(self.paths.root)
            try:
                self.pg.start()
            except subprocess.CalledProcessError as exc:
                detail = (exc.stderr or exc.stdout or "").strip().splitlines()
                raise StackError(f"PostgreSQL did not start ({detail[-1] if detail else exc}); "
                                 f"see {self.pg.log}") from exc
        if self.broker is not None and not self.stop_event.is_set():
            log.info("starting Mosquitto on 127.0.0.1:%d", self.broker.port)
            self._start_broker(self.broker)
        if self.stop_event.is_set():
            return
        self._prepare_database()
        if self.stop_event.is_set():
            return
        for child in self._children():
            self.supervisor.add(child)
        self._write_state()
        self._wait_ready()

    def _start_broker(self, broker: LocalMosquitto) -> None:
        """Mosquitto as the first supervised child; return once it listens."""
        broker.write_config()
        self.broker_child = self.supervisor.add(Child("mosquitto", broker.command(), broker.log))
        deadline = time.monotonic() + BROKER_TIMEOUT
        while not port_in_use(broker.port):
            if self.stop_event.is_set():
                return
            if time.monotonic() > deadline or not self.broker_child.running:
                raise StackError(f"Mosquitto did not listen on 127.0.0.1:{broker.port}; see "
                                 f"{broker.log}")
            self.stop_event.wait(0.05)

    def _clean_leftovers(self) -> None:
        """Processes of a supervisor that was killed: stop them (a running PostgreSQL is reused)."""
        keep: set[int] = set()
        postmaster = postmaster_pid(self.pg) if self.pg is not None else None
        if postmaster is not None:
            with suppress(psutil.Error):
                keep = {postmaster, *(p.pid for p in
                                      psutil.Process(postmaster).children(recursive=True))}
        leftovers = [p for p in stack_processes(self.paths.root) if p.pid not in keep]
        if leftovers:
            log.info("stopping %d process(es) left over from an earlier run", len(leftovers))
            terminate(leftovers)

    def _check_ports(self) -> None:
        """Fail at once, naming the variable to change, when a port is taken."""
        wanted = [("API", self.settings.api_port, "CARETAKER_API_PORT")]
        if self.broker is not None:
            wanted.append(("MQTT", self.settings.mqtt_port, "CARETAKER_MQTT_PORT"))
        if self.pg is not None and not self.pg_running():
            wanted.append(("database", self.settings.db_port, "CARETAKER_DB_PORT"))
        for what, port, var in wanted:
            if port_in_use(port):
                raise StackError(f"port {port} ({what}) is already in use: stop what listens "
                                 f"there or set {var} to a free port")

    def pg_running(self) -> bool:
        return self.pg is not None and postmaster_pid(self.pg) is not None

    def _prepare_database(self) -> None:
        """Migrations, MQTT service logins, the admin token and (for the demo) the example site:
        stack/bootstrap.py."""
        if self.demo is not None and self.demo.history > timedelta(0):
            # whole minutes, so the backfill's readings and the schedules start together
            start = datetime.now(UTC).replace(second=0, microsecond=0) - self.demo.history
            self.history_from = start
        self.token, new_site = bootstrap.prepare_database(
            self.settings, self.paths, demo=self.demo is not None, broker=self.broker,
            history_from=self.history_from)
        if self.history_from is not None and new_site:
            self.backfill = "pending"

    def _children(self) -> list[Child]:
        """The supervised processes; the demo's simulator only once its history is in."""
        return [self._child(args) for args in PROCESSES]

    def _child(self, args: tuple[str, ...]) -> Child:
        return Child(args[0], caretaker_argv(*args), self.paths.logs / f"{args[0]}.log")

    # -- the demo

    def start_demo(self) -> None:
        """Backfill the new demo site's history through the broker, then simulate live."""
        if self.demo is None or self.stop_event.is_set():
            return
        if self.backfill == "pending":
            self._backfill()
        if self.stop_event.is_set():
            return
        extra = ("--scenario", self.demo.scenario) if self.demo.scenario else ()
        for args in DEMO_PROCESSES:
            self.supervisor.add(self._child(args + (extra if args[0] == "simulate" else ())))
        self._write_state()

    def _backfill(self) -> None:
        """`caretaker simulate --backfill` for the history, its progress on our output."""
        assert self.demo is not None and self.history_from is not None
        seconds = int(self.demo.history.total_seconds())
        log.info("backfilling %s of history through the broker (readings, patrols), then "
                 "live data", self.demo.history)
        self.backfill = "running"
        self._write_state()
        proc = subprocess.Popen(caretaker_argv(
            "simulate", "--backfill", f"{seconds}s", "--start",
            self.history_from.strftime("%Y-%m-%dT%H:%M:%S")),  # naive: read as UTC
            env=self._child_env(), stdin=subprocess.DEVNULL)
        while proc.poll() is None:
            if self.stop_event.wait(0.5):
                proc.terminate()
                proc.wait(30)
                self.backfill = "failed"
                return
        self.backfill = "done" if proc.returncode == 0 else "failed"
        if proc.returncode != 0:
            log.warning("the backfill exited with %d; going on with live data", proc.returncode)
        self._write_state()

    def _child_env(self) -> dict[str, str]:
        return {**os.environ, MARKER: str(self.paths.root),
                "CARETAKER_STATE_DIR": str(self.paths.root), "PYTHONUNBUFFERED": "1"}

    def _wait_ready(self, timeout: float = 120.0) -> None:
        """Wait for the API to answer /health; say so in the state file."""
        deadline = time.monotonic() + timeout
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            if health(self.settings, timeout=1.0) is not None:
                self.ready = True
                self._write_state()
                return
            if self.supervisor.poll():
                self._write_state()
            self.stop_event.wait(0.2)
        if not self.stop_event.is_set():
            log.warning("the API did not answer %s/health within %.0fs; see %s",
                        api_url(self.settings), timeout, self.paths.logs / "api.log")

    # -- run

    def run(self) -> None:
        """Keep children (Mosquitto among them) and the database alive until asked to stop."""
        last_watch = 0.0
        while not self.stop_event.wait(0.5):
            if self.supervisor.poll():
                self._write_state()
            if time.monotonic() - last_watch >= 2.0:
                last_watch = time.monotonic()
                self._watch_database()

    def _watch_database(self) -> None:
        """Start the embedded database again if it has died (pg_ctl runs it as a daemon)."""
        if self.pg is None or self.pg_running():
            return
        log.warning("PostgreSQL stopped; starting it again")
        try:
            self.pg.start()
            self._write_state()
        except Exception as exc:  # retried on the next round
            log.error("could not restart PostgreSQL: %s", exc)

    # -- stop

    def stop(self) -> None:
        """Stop the children (the broker last), then the database; remove the run files."""
        if not self.started_any:
            self.paths.state.unlink(missing_ok=True)
            self.paths.pid.unlink(missing_ok=True)
            return
        log.info("stopping Caretaker")
        self.supervisor.stop_all()
        if self.pg is not None:
            try:
                self.pg.stop()
            except Exception as exc:
                log.warning("PostgreSQL: %s", exc)
        left = terminate(stack_processes(self.paths.root))
        if left:
            log.warning("could not stop: %s", ", ".join(str(p.pid) for p in left))
        for path in (self.paths.pid, self.paths.state):
            path.unlink(missing_ok=True)
        log.info("stopped")

    # -- state

    def state(self) -> dict[str, Any]:
        s = self.settings
        children = {}
        for child in self.supervisor.children:
            children[child.name] = {"pid": child.pid, "restarts": child.restarts,
                                    "last_exit": child.last_exit,
                                    "log": str(child.log_path)}
        servers: dict[str, Any] = {}
        if self.pg is not None:
            servers["postgres"] = {"pid": postmaster_pid(self.pg), "port": self.pg.port,
                                   "log": str(self.pg.log)}
        if self.broker is not None:
            servers["mosquitto"] = {"pid": self.broker_child.pid if self.broker_child else None,
                                    "port": self.broker.port, "log": str(self.broker.log)}
        return {
            "supervisor_pid": os.getpid(),
            "started_at": self.started_at.isoformat(),
            "ready": self.ready,
            "demo": self.demo is not None,
            "backfill": self.backfill,
            "api_url": api_url(s),
            "mqtt_url": s.mqtt_target().url(),  # the password redacted
            "database": redact(s.database_url) if s.database_url else
            f"postgresql://caretaker@127.0.0.1:{s.db_port}/caretaker",
            "servers": servers,
            "children": children,
            "logs": str(self.paths.logs),
        }

    def _write_state(self) -> None:
        write_state(self.paths, self.state())


def _check_reachable_by_postgres(root: Path) -> None:
    """As root, PostgreSQL runs as `postgres`, which must be able to enter the state directory."""
    if os.geteuid() != 0:
        return
    for folder in reversed(root.parents):  # the state directory itself is made 755
        if not folder.exists():
            continue
        mode = folder.stat().st_mode
        if not mode & 0o001 and folder.owner() != "postgres":
            raise StackError(f"the postgres user cannot enter {folder} (mode {mode & 0o777:o}), "
                             f"so it cannot reach {root}: set CARETAKER_STATE_DIR to a directory "
                             f"it can reach (e.g. /var/lib/caretaker), or `chmod o+x {folder}`")


# ---------------------------------------------------------------- down

def down(settings: Settings, timeout: float = 90.0) -> str:
    """Stop the supervisor of this state directory and everything it started."""
    paths = files(settings)
    pid = supervisor_pid(paths)
    said = []
    if pid is not None:
        try:
            proc = psutil.Process(pid)
            proc.terminate()
            proc.wait(timeout)
            said.append(f"stopped the supervisor (pid {pid}) and what it ran")
        except psutil.TimeoutExpired:
            proc.kill()
            said.append(f"the supervisor (pid {pid}) did not stop in {timeout:.0f}s; killed it")
        except psutil.NoSuchProcess:
            pass
    # Whatever is left (a supervisor killed with -9 leaves the database running).
    with lock(paths) as held:
        if held is None:
            raise StackError(f"a supervisor under {paths.root} still holds its lock; "
                             "try `caretaker down` again")
        pg = LocalPostgres(paths.root, settings.db_port)
        if postmaster_pid(pg) is not None:
            pg.stop()
            said.append("stopped the embedded PostgreSQL")
        rest = stack_processes(paths.root)
        if rest:
            alive = terminate(rest)
            said.append(f"stopped {len(rest) - len(alive)} leftover process(es)")
            if alive:
                raise StackError("could not stop: " + ", ".join(str(p.pid) for p in alive))
        for path in (paths.pid, paths.state):
            path.unlink(missing_ok=True)
    return "\n".join(said) if said else f"nothing was running under {paths.root}"
