"""Database access: a psycopg 3 connection pool and single connections."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from caretaker.settings import Settings, get_settings

# A failed attempt to open a pooled connection is retried for this long (every second or
# so), then started afresh: after a database restart the pool reconnects within about a
# second instead of after an exponential back-off grown long during the outage.
RECONNECT_SECONDS = 2.0


def connect(url: str | None = None, **kwargs: Any) -> psycopg.Connection[DictRow]:
    """Open one connection (rows as dicts) to the configured database."""
    return psycopg.connect(url or get_settings().db_url(), row_factory=dict_row, **kwargs)


def make_pool(settings: Settings | None = None, *, url: str | None = None,
              min_size: int = 1, max_size: int | None = None, name: str = "caretaker"
              ) -> ConnectionPool:
    """Open a connection pool; `with pool.connection() as conn:` commits or rolls back.

    Each connection is checked as it is taken; the first dead one found (the database
    restarted) has every idle connection checked at once, so dead ones are replaced rather
    than handed out one after another. Connections are renewed every `db_pool_max_lifetime`
    seconds, and a caller waits at most `db_pool_timeout` seconds for one.
    """
    settings = settings or get_settings()

    def check(conn: psycopg.Connection[Any]) -> None:
        try:
            ConnectionPool.check_connection(conn)
        except psycopg.Error:
            pool.check()
            raise

    def retry(failed: ConnectionPool) -> None:
        if not failed.closed:
            failed.check()  # grows the pool again if it holds no connection

    pool = ConnectionPool(
        url or settings.db_url(),
        min_size=min_size,
        max_size=max_size or settings.db_pool_size,
        kwargs={"row_factory": dict_row},
        name=name,
        open=False,
        check=check,
        timeout=settings.db_pool_timeout,
        max_lifetime=settings.db_pool_max_lifetime,
        reconnect_timeout=RECONNECT_SECONDS,
        reconnect_failed=retry,
    )
    pool.open(wait=True, timeout=30)
    return pool
