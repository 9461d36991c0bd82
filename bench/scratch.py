"""A benchmark's own database: PostgreSQL + TimescaleDB on a free loopback port in a temp dir,
migrated, removed afterwards."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from caretaker.migrations import migrate  # noqa: E402
from caretaker.servers import LocalPostgres, free_port  # noqa: E402


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """The URL of a migrated database `bench` on a server of its own, stopped at the end."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(tmp, 0o755)  # the server runs as the postgres user
    pg = LocalPostgres(tmp, free_port())
    pg.start()
    try:
        base = pg.url.rsplit("/", 1)[0]
        with psycopg.connect(base + "/postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE bench")
        url = base + "/bench"
        with psycopg.connect(url) as c:
            migrate(c)
        yield url
    finally:
        pg.stop(mode="immediate")
        shutil.rmtree(tmp, ignore_errors=True)
