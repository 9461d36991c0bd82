"""Fixtures: a throwaway TimescaleDB cluster (per session) and Mosquitto brokers, on free ports.

`database` gives each test its own freshly migrated database (a copy of a template), and
`mqtt` its own broker (no anonymous clients: every client logs in, see `Broker`), so tests
cannot see each other's rows or retained messages.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from caretaker.migrations import migrate
from caretaker.mqtt_credentials import (
    SECRETS_KEY,
    SIMULATOR_USER,
    Credential,
    hash_password,
    ingest_username,
    new_password,
    username_for,
    write_files,
)
from caretaker.servers import LocalMosquitto, LocalPostgres, free_port
from caretaker.settings import MqttTarget

TEMPLATE = "caretaker_template"


@pytest.fixture(scope="session")
def state_dir() -> Iterator[Path]:
    """A state directory for the session's servers (the postgres user must reach it)."""
    path = Path(tempfile.mkdtemp(prefix="caretaker-test-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(state_dir: Path) -> Iterator[LocalPostgres]:
    """A running PostgreSQL + TimescaleDB cluster with a migrated template database."""
    pg = LocalPostgres(state_dir, free_port())
    pg.start()
    admin = pg.url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    with psycopg.connect(pg.url.rsplit("/", 1)[0] + f"/{TEMPLATE}") as conn:
        migrate(conn)
    with psycopg.connect(admin, autocommit=True) as conn:
        # No session may sit on a template while it is copied: lock it against connections.
        conn.execute(f"ALTER DATABASE {TEMPLATE} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE datname = %s", (TEMPLATE,))
    yield pg
    pg.stop(mode="immediate")


@pytest.fixture
def database(pg_server: LocalPostgres) -> Iterator[str]:
    """URL of a new, migrated, empty database for this test alone."""
    base = pg_server.url.rsplit("/", 1)[0]
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        # A session still closing on the template (a previous test's straggler) makes
        # CREATE DATABASE ... TEMPLATE fail with ObjectInUse for a moment: try again.
        for attempt in range(50):
            try:
                conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
                break
            except psycopg.errors.ObjectInUse:
                if attempt == 49:
                    raise
                time.sleep(0.1)
    yield f"{base}/{name}"
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def conn(database: str) -> Iterator[psycopg.Connection]:
    """A connection (rows as dicts) to this test's database."""
    from psycopg.rows import dict_row

    with psycopg.connect(database, row_factory=dict_row) as c:
        yield c


POOL = 10  # logins of each service role a test can take (the client id is the user name)


def paho_client(target: MqttTarget, *, v5: bool = True, client_id: str | None = None,
                **kwargs: Any) -> paho.Client:
    """A paho client logging in as `target` (its client id is the user name)."""
    client = paho.Client(CallbackAPIVersion.VERSION2,
                         client_id=client_id if client_id is not None else
                         (target.username or f"anon-{uuid.uuid4().hex[:8]}"),
                         protocol=MQTTProtocolVersion.MQTTv5 if v5
                         else MQTTProtocolVersion.MQTTv311, **kwargs)
    if target.username:
        client.username_pw_set(target.username, target.password)
    return client


def connack(target: MqttTarget, timeout: float = 5.0, **kwargs: Any) -> str:
    """Connect once as `target` and return the broker's CONNACK reason ("Success" or why not)."""
    client = paho_client(target, **kwargs)
    reasons: list[str] = []
    client.on_connect = lambda c, u, f, reason, p: reasons.append(str(reason))
    try:
        client.connect(target.host, target.port)
    except OSError as exc:
        return f"unreachable: {exc}"
    deadline = time.monotonic() + timeout
    while not reasons and time.monotonic() < deadline:
        if client.loop(0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
            break
    client.disconnect()
    return reasons[0] if reasons else "no CONNACK"


@dataclass
class Broker:
    """A test's Mosquitto, its service logins (in `<state_dir>/secrets.json`, like `up`), and
    logins created on demand. The password and ACL files are written from `credentials`."""

    server: LocalMosquitto
    credentials: list[Credential] = field(default_factory=list, repr=False)
    passwords: dict[str, str] = field(default_factory=dict, repr=False)
    _turns: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def state_dir(self) -> Path:
        return self.server.state_dir

    def target(self, username: str | None = None) -> MqttTarget:
        """The broker with `username`'s login (anonymous when None)."""
        return MqttTarget(self.host, self.port, username,
                          self.passwords.get(username) if username else None)

    def take(self, role: str = "simulator") -> MqttTarget:
        """A service login of `role`, the pool's next in turn: clients alive at once in a test
        (fewer than POOL) never share one (the client id is the user name)."""
        names = [c.username for c in self.credentials if c.kind == "service"
                 and c.subject == role and c.username.startswith("t-")]
        self._turns[role] = self._turns.get(role, -1) + 1
        return self.target(names[self._turns[role] % len(names)])

    def url(self, username: str | None = None) -> str:
        """mqtt://[user:pass@]host:port (no login: the ingest finds its own in secrets.json)."""
        if username is None:
            return f"mqtt://{self.host}:{self.port}"
        return f"mqtt://{quote(username, safe='')}:{self.passwords[username]}@" \
               f"{self.host}:{self.port}"

    def add(self, kind: str, subject: str, site_id: str | None = None,
            username: str | None = None, *, write: bool = True) -> MqttTarget:
        """A new login (kept in memory, not in a database); written and reloaded if `write`."""
        if kind != "service":
            username = username_for(kind, site_id, subject)
        assert username is not None
        password = new_password()
        self.credentials.append(Credential(username, kind, site_id, subject,
                                           hash_password(password)))
        self.passwords[username] = password
        if write:
            self.apply()
            wait_for_login(self.target(username))
        return self.target(username)

    def devices(self, keys: Iterable[str]) -> dict[str, MqttTarget]:
        """Device logins for `site/device` keys, with one reload."""
        out = {k: self.add("device", k.split("/", 1)[1], k.split("/", 1)[0], write=False)
               for k in keys}
        self.apply()
        for target in out.values():
            wait_for_login(target)
        return out

    def revoke(self, username: str) -> None:
        self.credentials = [c for c in self.credentials if c.username != username]
        self.apply()

    def apply(self) -> None:
        """Write the password and ACL files (and secrets.json) and make the broker reload."""
        self.write()
        self.server.reload()

    def write(self) -> None:
        write_files(self.server.root, self.credentials, owner=self.server.owner)
        path = self.state_dir / "secrets.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data[SECRETS_KEY] = self.passwords
        path.write_text(json.dumps(data))
        os.chmod(path, 0o600)


def wait_for_login(target: MqttTarget, timeout: float = 10.0) -> None:
    """Wait until the broker (after a reload) accepts `target`'s login."""
    deadline = time.monotonic() + timeout
    while (reason := connack(target)) != "Success":
        assert time.monotonic() < deadline, f"{target.username} still refused: {reason}"
        time.sleep(0.05)


def broker_dir() -> Path:
    """A state directory the `mosquitto` user can reach (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="caretaker-mqtt-"))
    os.chmod(path, 0o755)
    return path


def start_broker(state: Path, port: int | None = None, **kwargs: Any) -> Broker:
    """A running broker in `state` with the service logins `caretaker up` would create
    (caretaker-ingest-0..3, caretaker-simulator) and POOL spare logins per role."""
    broker = Broker(LocalMosquitto(state, port or free_port(), **kwargs))
    for i in range(4):
        broker.add("service", "ingest", username=ingest_username(i), write=False)
    broker.add("service", "simulator", username=SIMULATOR_USER, write=False)
    for i in range(POOL):
        broker.add("service", "simulator", username=f"t-pub-{i}", write=False)
        broker.add("service", "ingest", username=f"t-sub-{i}", write=False)
    broker.server.write_config()
    broker.write()
    broker.server.start()
    return broker


@pytest.fixture
def mqtt() -> Iterator[Broker]:
    """A Mosquitto with Caretaker's generated config and service logins, for this test alone.

    One broker per test: retained messages and persistent sessions of one test must not
    reach the next one's subscribers.
    """
    state = broker_dir()
    broker = start_broker(state)
    yield broker
    broker.server.stop()
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def settings_env(database: str, mqtt: Broker, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Point Caretaker's settings (this process and its children) at the test servers."""
    from caretaker.settings import get_settings

    env = {
        "CARETAKER_DATABASE_URL": database,
        # No login in the URL: each process (ingest, simulator) finds its own in the
        # broker's secrets.json, as under `caretaker up`.
        "CARETAKER_MQTT_URL": mqtt.url(),
        "CARETAKER_STATE_DIR": str(mqtt.state_dir),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()
