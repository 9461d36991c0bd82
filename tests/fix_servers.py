"""Fixtures: a throwaway TimescaleDB cluster (per session) and Mosquitto brokers, on free ports.

`database` gives each test its own freshly migrated database (a copy of a template), and
`mqtt` its own broker, so tests cannot see each other's rows or retained messages.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from caretaker.migrations import migrate
from caretaker.servers import LocalMosquitto, LocalPostgres, free_port

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


@pytest.fixture
def mqtt(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """(host, port) of a Mosquitto with Caretaker's generated config, for this test alone.

    One broker per test: retained messages and persistent sessions of one test must not
    reach the next one's subscribers.
    """
    broker = LocalMosquitto(tmp_path / "broker", free_port())
    broker.start()
    yield "127.0.0.1", broker.port
    broker.stop()


@pytest.fixture
def settings_env(database: str, mqtt: tuple[str, int], tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Point Caretaker's settings (this process and its children) at the test servers."""
    from caretaker.settings import get_settings

    env = {
        "CARETAKER_DATABASE_URL": database,
        "CARETAKER_MQTT_URL": f"mqtt://{mqtt[0]}:{mqtt[1]}",
        "CARETAKER_STATE_DIR": str(tmp_path / "state"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()
