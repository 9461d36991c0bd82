"""The embedded servers: a project-local PostgreSQL cluster and Mosquitto broker on loopback."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PG_VERSIONS = ("17", "16", "15")


class MissingDependency(RuntimeError):
    """A program Caretaker needs is not installed."""


def pg_bindir() -> Path:
    """The bin directory of the newest PostgreSQL that has TimescaleDB installed."""
    for version in PG_VERSIONS:
        bindir = Path(f"/usr/lib/postgresql/{version}/bin")
        lib = Path(f"/usr/lib/postgresql/{version}/lib/timescaledb.so")
        if (bindir / "postgres").exists() and lib.exists():
            return bindir
    raise MissingDependency(
        "no PostgreSQL with TimescaleDB found: run `bash scripts/setup.sh` as root "
        "(or set CARETAKER_DATABASE_URL to an external TimescaleDB)"
    )


def mosquitto_binary() -> str:
    """Path of the mosquitto broker."""
    path = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(path).exists():
        raise MissingDependency(
            "mosquitto is not installed: run `bash scripts/setup.sh` as root "
            "(or set CARETAKER_MQTT_URL to an external broker)"
        )
    return path


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something already listens on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres() -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the postgres user then."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)


class LocalPostgres:
    """A PostgreSQL cluster with TimescaleDB in `<state>/pg`, listening on 127.0.0.1:port."""

    def __init__(self, state_dir: Path, port: int) -> None:
        self.state_dir = state_dir
        self.port = port
        self.root = state_dir / "pg"
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log = state_dir / "logs" / "postgres.log"
        self.secrets_file = state_dir / "secrets.json"

    @property
    def password(self) -> str:
        return str(json.loads(self.secrets_file.read_text())["db_password"])

    @property
    def url(self) -> str:
        return f"postgresql://caretaker:{self.password}@127.0.0.1:{self.port}/caretaker"

    def _pgctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [*_as_postgres(), str(pg_bindir() / "pg_ctl"), "-D", str(self.data), *args]
        return subprocess.run(cmd, check=check, capture_output=True, text=True)

    def init(self) -> None:
        """Create the cluster once: a `caretaker` superuser with a random password."""
        if (self.data / "PG_VERSION").exists():
            return
        bindir = pg_bindir()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o755)  # the postgres user must reach its data directory
        for d in (self.root, self.data, self.socket_dir, self.log.parent):
            d.mkdir(parents=True, exist_ok=True)
            _own(d)
        os.chmod(self.data, 0o700)
        if not self.secrets_file.exists():
            self.secrets_file.write_text(json.dumps({"db_password": secrets.token_urlsafe(24)}))
            os.chmod(self.secrets_file, 0o600)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        _own(pwfile)
        try:
            subprocess.run(
                [*_as_postgres(), str(bindir / "initdb"), "-D", str(self.data), "-U", "caretaker",
                 "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync"],
                check=True, capture_output=True, text=True,
            )
        finally:
            pwfile.unlink()
        conf = self.data / "postgresql.conf"
        with conf.open("a") as f:
            f.write(
                "\n# caretaker\n"
                "shared_preload_libraries = 'timescaledb'\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "max_connections = 200\n"
                "shared_buffers = '512MB'\n"
                "timescaledb.telemetry_level = off\n"
                # Its job scheduler only runs jobs the Apache edition refuses anyway, and its
                # workers hold connections to every database (blocking CREATE DATABASE ...
                # TEMPLATE); retention runs in Caretaker's own scheduler instead.
                "timescaledb.max_background_workers = 0\n"
                "synchronous_commit = on\n"
                "max_wal_size = '2GB'\n"
            )

    def running(self) -> bool:
        return self._pgctl("status", check=False).returncode == 0

    def start(self) -> None:
        """Start the cluster (creating it first if needed) and the `caretaker` database."""
        self.init()
        if not self.running():
            if port_in_use(self.port):
                raise RuntimeError(
                    f"port {self.port} is already in use: stop what listens there or set "
                    "CARETAKER_DB_PORT to a free port"
                )
            self._pgctl("start", "-w", "-t", "60", "-l", str(self.log), "-o", f"-p {self.port}")
        self._ensure_database()

    def _ensure_database(self) -> None:
        import psycopg

        admin = f"postgresql://caretaker:{self.password}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'caretaker'").fetchone():
                conn.execute("CREATE DATABASE caretaker")

    def stop(self, mode: str = "fast") -> None:
        if self.data.exists() and self.running():
            self._pgctl("stop", "-w", "-m", mode)


MOSQUITTO_USER = "mosquitto"


def _reachable_by(user: str, path: Path) -> bool:
    """True when `user` can traverse every directory above `path` (checked by mode bits)."""
    pw = pwd.getpwnam(user)
    for parent in [path, *path.parents]:
        st = parent.stat()
        if st.st_uid == pw.pw_uid:
            ok = bool(st.st_mode & 0o100)
        elif st.st_gid == pw.pw_gid:
            ok = bool(st.st_mode & 0o010)
        else:
            ok = bool(st.st_mode & 0o001)
        if not ok:
            return False
    return True


class LocalMosquitto:
    """A Mosquitto broker with a generated config in `<state>/mqtt`, on 127.0.0.1:port.

    No anonymous clients: logins come from `passwords` and topics from `acl` beside the config
    (written from the mqtt_credentials table; `reload()` makes the broker read them again).
    The client id is forced to the user name, so no client can take over another's session.
    Run as root, the broker drops to the `mosquitto` user, which owns the state it writes.
    """

    def __init__(self, state_dir: Path, port: int, *, autosave_interval: int = 5,
                 tls_port: int | None = None, certfile: Path | None = None,
                 keyfile: Path | None = None) -> None:
        self.state_dir = state_dir
        self.port = port
        self.root = state_dir / "mqtt"
        self.config = self.root / "mosquitto.conf"
        self.password_file = self.root / "passwords"
        self.acl_file = self.root / "acl"
        self.pid_file = self.root / "mosquitto.pid"
        self.log = state_dir / "logs" / "mosquitto.log"
        # Seconds between saves of the in-memory store: what a crash (kill -9) can lose at
        # most; a graceful stop always saves (bench/broker_crash.py measures it).
        self.autosave_interval = autosave_interval
        # An optional TLS listener (mqtts://) beside the plain one; the certificate and key
        # are copied into the state directory, where the broker's user can read them.
        self.tls_port, self.certfile, self.keyfile = tls_port, certfile, keyfile
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def owner(self) -> str | None:
        """The user the broker runs as when started by root (None: the current user)."""
        return MOSQUITTO_USER if os.geteuid() == 0 else None

    def write_config(self) -> None:
        """Write the config (and empty auth files if none yet), owned by the broker's user."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        for path in (self.password_file, self.acl_file):
            if not path.exists():
                path.write_text("")
                os.chmod(path, 0o600)
        self.config.write_text(
            "# generated by caretaker\n"
            "per_listener_settings false\n"
            "allow_anonymous false\n"
            f"password_file {self.password_file}\n"
            f"acl_file {self.acl_file}\n"
            f"pid_file {self.pid_file}\n"
            f"user {MOSQUITTO_USER}\n"
            f"listener {self.port} 127.0.0.1\n"
            # The client id is the user name: nobody can connect as the ingest and discard
            # its persistent session, and each ingest worker has a login of its own.
            "use_username_as_clientid true\n"
            + self._tls_listener() +
            "persistence true\n"
            f"persistence_location {self.root}/\n"
            f"autosave_interval {self.autosave_interval}\n"
            # Raised queue limits: a burst or a consumer that is down must not drop messages.
            "max_queued_messages 1000000\n"
            "max_queued_bytes 0\n"
            "max_inflight_messages 1000\n"
            "max_packet_size 1048576\n"
            "persistent_client_expiration 7d\n"
            "set_tcp_nodelay true\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\n"
        )
        self._own_state()

    def _tls_listener(self) -> str:
        if self.tls_port is None or self.certfile is None or self.keyfile is None:
            return ""
        cert, key = self.root / "server.crt", self.root / "server.key"
        shutil.copyfile(self.certfile, cert)
        shutil.copyfile(self.keyfile, key)
        os.chmod(key, 0o600)
        return (f"listener {self.tls_port} 127.0.0.1\n"
                f"certfile {cert}\nkeyfile {key}\n"
                "use_username_as_clientid true\n")

    def _own_state(self) -> None:
        """Give the broker's user its directory and files (it reads them after dropping root)."""
        owner = self.owner
        if owner is None:
            return
        if not _reachable_by(owner, self.root):
            raise RuntimeError(
                f"the {owner} user cannot reach {self.root}: make its parent directories "
                "world-traversable (chmod o+x) or set CARETAKER_STATE_DIR elsewhere")
        pw = pwd.getpwnam(owner)
        for path in [self.root, *self.root.iterdir()]:
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def command(self) -> list[str]:
        """The broker's command line (for a supervisor to run); write_config() comes first."""
        return [mosquitto_binary(), "-c", str(self.config)]

    def start(self, timeout: float = 20.0) -> None:
        """Run the broker as a child of this process; return once it listens."""
        if port_in_use(self.port):
            raise RuntimeError(
                f"port {self.port} is already in use: stop what listens there or set "
                "CARETAKER_MQTT_PORT to a free port"
            )
        self.write_config()
        with open(self.log, "ab") as logf:
            self._process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                             stdout=logf, stderr=subprocess.STDOUT)
        if not wait_for_port(self.port, timeout, process=self._process):
            self.stop()
            raise RuntimeError(f"mosquitto did not listen on port {self.port} within "
                               f"{timeout:.0f}s; see {self.log}")

    @property
    def pid(self) -> int | None:
        if self._process is not None and self._process.poll() is None:
            return self._process.pid
        try:  # a broker started by another process (`caretaker up`'s supervisor)
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if str(self.config).encode() in cmdline else None  # not a stale pid

    def reload(self) -> bool:
        """SIGHUP: the broker re-reads the password and ACL files and disconnects clients whose
        login is gone; False when no broker runs."""
        pid = self.pid
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> None:
        """SIGTERM (the broker saves its store) and wait; fine if it has died already."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
            self._process = None


def wait_for_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1", *,
                  process: subprocess.Popen[bytes] | None = None) -> bool:
    """Wait until something listens on host:port; False on timeout or if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_in_use(port, host):
            return True
        if process is not None and process.poll() is not None:
            return False
        time.sleep(0.05)
    return False
