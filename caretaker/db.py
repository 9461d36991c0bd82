"""Database access: a psycopg 3 connection pool and single connections."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from caretaker.settings import Settings, get_settings


def connect(url: str | None = None, **kwargs: Any) -> psycopg.Connection[DictRow]:
    """Open one connection (rows as dicts) to the configured database."""
    return psycopg.connect(url or get_settings().db_url(), row_factory=dict_row, **kwargs)


def make_pool(settings: Settings | None = None, *, url: str | None = None,
              min_size: int = 1, max_size: int | None = None, name: str = "caretaker"
              ) -> ConnectionPool:
    """Open a connection pool; `with pool.connection() as conn:` commits or rolls back.

    Each connection is checked as it is taken, so after a database restart the dead ones
    are replaced instead of handed out; connections are also renewed every
    `db_pool_max_lifetime` seconds, and a caller waits at most `db_pool_timeout` seconds.
    """
    settings = settings or get_settings()
    pool = ConnectionPool(
        url or settings.db_url(),
        min_size=min_size,
        max_size=max_size or settings.db_pool_size,
        kwargs={"row_factory": dict_row},
        name=name,
        open=False,
        check=ConnectionPool.check_connection,
        timeout=settings.db_pool_timeout,
        max_lifetime=settings.db_pool_max_lifetime,
    )
    pool.open(wait=True, timeout=30)
    return pool
