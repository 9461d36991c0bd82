"""`caretaker up / down / status / demo`: the whole platform on one machine, supervised.

The supervisor runs in the `caretaker up` process (or in the background with --detach). It
starts the embedded PostgreSQL and Mosquitto under the state directory (unless external
servers are configured), applies migrations, keeps `caretaker ingest`, `rules` and `api`
running, and stops everything, in reverse order, on Ctrl-C, SIGTERM or `caretaker down`.
Files in the state directory: supervisor.lock (held while it runs), supervisor.pid,
stack.json (what runs where, for `status`), admin-token (mode 600), logs/.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import psutil

from caretaker.servers import LocalMosquitto, LocalPostgres, port_in_use
from caretaker.settings import Settings
from caretaker.supervisor import Child, Supervisor
from stack.app import DEMO_PROCESSES, PROCESSES

log = logging.getLogger("stack.up")

# Set in the environment of every process the supervisor starts, so `down` can find them all.
MARKER = "CARETAKER_STACK"
READY_TIMEOUT = 180.0


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


# ---------------------------------------------------------------- locking and process discovery

@contextmanager
def _lock(paths: StackFiles) -> Iterator[IO[str] | None]:
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
    with _lock(paths) as held:
        if held is not None:
            return None
    try:
        return int(paths.pid.read_text().strip())
    except (OSError, ValueError):
        return None


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


def _terminate(procs: list[psutil.Process], timeout: float = 10.0) -> list[psutil.Process]:
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


# ---------------------------------------------------------------- up

def up(settings: Settings, *, external: bool = False, detach: bool = False,
       background: bool = False, demo: bool = False) -> int:
    """Bring the stack up (and, for the demo, the example site and the simulator)."""
    if external and not (settings.database_url and settings.mqtt_url):
        raise StackError("--external needs both CARETAKER_DATABASE_URL and CARETAKER_MQTT_URL "
                         "(e.g. postgresql://user:pw@db:5432/caretaker and mqtt://broker:1883)")
    if detach:
        return _detach(settings, demo=demo, external=external)
    return _supervise(settings, demo=demo, show_token=not background)


def _detach(settings: Settings, *, demo: bool, external: bool) -> int:
    """Start the supervisor in the background; return once it reports the API healthy."""
    paths = files(settings)
    running = supervisor_pid(paths)
    if running is not None:
        raise StackError(f"Caretaker is already running under {paths.root} (supervisor pid "
                         f"{running}): see `caretaker status`, or stop it with `caretaker down`")
    paths.logs.mkdir(parents=True, exist_ok=True)
    log_path = paths.logs / "supervisor.log"
    args = ["demo" if demo else "up", "--supervised"] + (["--external"] if external else [])
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "stack.cli", *args],
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
            print(banner(settings, state, token=_read_token(paths)))
            return 0
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    raise StackError(f"the stack did not become ready in {READY_TIMEOUT:.0f}s; it was stopped. "
                     f"See {log_path} and the logs next to it")


def _supervise(settings: Settings, *, demo: bool, show_token: bool) -> int:
    """Run the stack in this process until a signal or `caretaker down` stops it."""
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    paths = files(settings)
    with _lock(paths) as held:
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
            stack.run()
        finally:
            stack.stop()
    return 0


class _Stack:
    """The servers and children of one `caretaker up`, and the state file describing them."""

    def __init__(self, settings: Settings, paths: StackFiles, stop: threading.Event, *,
                 demo: bool) -> None:
        self.settings = settings
        self.paths = paths
        self.stop_event = stop
        self.demo = demo
        self.pg = LocalPostgres(paths.root, settings.db_port) if not settings.database_url \
            else None
        self.broker = LocalMosquitto(paths.root, settings.mqtt_port) if not settings.mqtt_url \
            else None
        self.supervisor: Supervisor | None = None
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
            self.broker.start()
        if self.stop_event.is_set():
            return
        self._prepare_database()
        if self.stop_event.is_set():
            return
        self.supervisor = Supervisor(self._children(), self._child_env())
        self.supervisor.start_all()
        self._write_state()
        self._wait_ready()

    def _clean_leftovers(self) -> None:
        """Processes of a supervisor that was killed: stop them (a running PostgreSQL is reused)."""
        keep: set[int] = set()
        postmaster = _postmaster_pid(self.pg) if self.pg is not None else None
        if postmaster is not None:
            with suppress(psutil.Error):
                keep = {postmaster, *(p.pid for p in
                                      psutil.Process(postmaster).children(recursive=True))}
        leftovers = [p for p in stack_processes(self.paths.root) if p.pid not in keep]
        if leftovers:
            log.info("stopping %d process(es) left over from an earlier run", len(leftovers))
            _terminate(leftovers)

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
        return self.pg is not None and _postmaster_pid(self.pg) is not None

    def _prepare_database(self) -> None:
        from caretaker import tokens
        from caretaker.db import connect
        from caretaker.migrations import migrate
        from caretaker.mqtt_credentials import ensure_service_credentials, sync_broker

        with connect(self.settings.db_url()) as conn:
            applied = migrate(conn)
            if applied:
                log.info("applied %d migration(s)", len(applied))
            if self.broker is not None:  # logins of the ingest and simulator; broker reloads
                ensure_service_credentials(conn, self.paths.root)
                sync_broker(conn, self.broker)
            token = _read_token(self.paths)
            if token is None or tokens.lookup(conn, token) is None:
                token = tokens.create_token(conn, role="admin", name="caretaker up")
                _write_secret(self.paths.token, token)
                conn.commit()
            self.token = token
            if self.demo:
                from caretaker.clock import system_clock
                from caretaker.site_config import SiteConfigError, example_document
                from stack.app import load_site

                try:
                    result = load_site(conn, example_document(), now=system_clock())
                except SiteConfigError as exc:
                    raise StackError(f"the example site could not be loaded: {exc}") from exc
                conn.commit()
                log.info("example site %s loaded (%d rows new or changed)", result.site_id,
                         result.changed)

    def _children(self) -> list[Child]:
        wanted = PROCESSES + (DEMO_PROCESSES if self.demo else ())
        return [Child(args[0], list(args), self.paths.logs / f"{args[0]}.log") for args in wanted]

    def _child_env(self) -> dict[str, str]:
        return {**os.environ, MARKER: str(self.paths.root),
                "CARETAKER_STATE_DIR": str(self.paths.root), "PYTHONUNBUFFERED": "1"}

    def _wait_ready(self, timeout: float = 120.0) -> None:
        """Wait for the API to answer /health; say so in the state file."""
        if self.supervisor is None:
            self.ready = True
            self._write_state()
            return
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
        """Keep children and servers alive until asked to stop."""
        last_watch = 0.0
        while not self.stop_event.wait(0.5):
            if self.supervisor is not None and self.supervisor.poll():
                self._write_state()
            if time.monotonic() - last_watch >= 2.0:
                last_watch = time.monotonic()
                self._watch_servers()

    def _watch_servers(self) -> None:
        """Start the embedded broker or database again if it has died."""
        try:
            if self.broker is not None and not port_in_use(self.broker.port):
                log.warning("Mosquitto stopped; starting it again")
                with suppress(Exception):
                    self.broker.stop()
                self.broker = LocalMosquitto(self.paths.root, self.settings.mqtt_port)
                self.broker.start()
                self._write_state()
            if self.pg is not None and not self.pg_running():
                log.warning("PostgreSQL stopped; starting it again")
                self.pg.start()
                self._write_state()
        except Exception as exc:  # retried on the next round
            log.error("could not restart a server: %s", exc)

    # -- stop

    def stop(self) -> None:
        """Stop the children, then the broker, then the database; remove the run files."""
        if not self.started_any:
            self.paths.state.unlink(missing_ok=True)
            self.paths.pid.unlink(missing_ok=True)
            return
        log.info("stopping Caretaker")
        if self.supervisor is not None:
            self.supervisor.stop_all()
        if self.broker is not None:
            try:
                self.broker.stop()
            except Exception as exc:  # it may have died already; the sweep below catches it
                log.warning("Mosquitto: %s", exc)
        if self.pg is not None:
            try:
                self.pg.stop()
            except Exception as exc:
                log.warning("PostgreSQL: %s", exc)
        left = _terminate(stack_processes(self.paths.root))
        if left:
            log.warning("could not stop: %s", ", ".join(str(p.pid) for p in left))
        for path in (self.paths.pid, self.paths.state):
            path.unlink(missing_ok=True)
        log.info("stopped")

    # -- state

    def state(self) -> dict[str, Any]:
        s = self.settings
        children = {}
        for child in self.supervisor.children if self.supervisor else []:
            children[child.name] = {"pid": child.pid, "restarts": child.restarts,
                                    "last_exit": child.last_exit,
                                    "log": str(child.log_path)}
        servers: dict[str, Any] = {}
        if self.pg is not None:
            servers["postgres"] = {"pid": _postmaster_pid(self.pg), "port": self.pg.port,
                                   "log": str(self.pg.log)}
        if self.broker is not None:
            servers["mosquitto"] = {"pid": self.broker.pid, "port": self.broker.port,
                                    "log": str(self.broker.log)}
        return {
            "supervisor_pid": os.getpid(),
            "started_at": self.started_at.isoformat(),
            "ready": self.ready,
            "demo": self.demo,
            "api_url": api_url(s),
            "mqtt_url": s.mqtt_target().url(),  # the password redacted
            "database": redact(s.database_url) if s.database_url else
            f"postgresql://caretaker@127.0.0.1:{s.db_port}/caretaker",
            "servers": servers,
            "children": children,
            "logs": str(self.paths.logs),
        }

    def _write_state(self) -> None:
        tmp = self.paths.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state(), indent=2))
        tmp.replace(self.paths.state)


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


def _postmaster_pid(pg: LocalPostgres) -> int | None:
    try:
        pid = int((pg.data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if psutil.pid_exists(pid) else None


def _read_token(paths: StackFiles) -> str | None:
    try:
        return paths.token.read_text().strip() or None
    except OSError:
        return None


def _write_secret(path: Path, value: str) -> None:
    """Write a file only its owner can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.chmod(path, 0o600)


def read_state(paths: StackFiles) -> dict[str, Any]:
    """The supervisor's description of the running stack ({} when none)."""
    try:
        return json.loads(paths.state.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}


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
    lines.append("Stop with Ctrl-C or `caretaker down`; see `caretaker status`.")
    return "\n".join(lines)


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
    # Whatever is left (a supervisor killed with -9 leaves its servers running).
    with _lock(paths) as held:
        if held is None:
            raise StackError(f"a supervisor under {paths.root} still holds its lock; "
                             "try `caretaker down` again")
        pg = LocalPostgres(paths.root, settings.db_port)
        if _postmaster_pid(pg) is not None:
            pg.stop()
            said.append("stopped the embedded PostgreSQL")
        rest = stack_processes(paths.root)
        if rest:
            alive = _terminate(rest)
            said.append(f"stopped {len(rest) - len(alive)} leftover process(es)")
            if alive:
                raise StackError("could not stop: " + ", ".join(str(p.pid) for p in alive))
        for path in (paths.pid, paths.state):
            path.unlink(missing_ok=True)
    return "\n".join(said) if said else f"nothing was running under {paths.root}"
