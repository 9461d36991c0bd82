"""Versioned SQL migrations: caretaker/schema files applied in order, each once, recorded."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg.rows import dict_row

from caretaker.locks import lock_key

MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
# Serialises concurrent `migrate` calls from several processes.
LOCK_KEY = lock_key("migrations")


@dataclass(frozen=True)
class Migration:
    """One SQL file of caretaker/migrations."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    """All migrations shipped with the package, in version order."""
    found = []
    for entry in resources.files("caretaker.schema").iterdir():
        m = MIGRATION_NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version number: {versions}")
    return found


def migrate(conn: psycopg.Connection[Any]) -> list[Migration]:
    """Apply the migrations not yet applied; return those applied now."""
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = conn.cursor(row_factory=dict_row).execute(
            "SELECT version, checksum FROM schema_migrations").fetchall()
        done = {r["version"]: r["checksum"] for r in rows}
        applied = []
        for mig in available():
            if mig.version in done:
                if done[mig.version] != mig.checksum:
                    raise RuntimeError(
                        f"migration {mig.version:03d}_{mig.name} was changed after it was "
                        "applied; add a new migration instead"
                    )
                continue
            with conn.transaction():
                conn.execute(mig.sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (mig.version, mig.name, mig.checksum),
                )
            applied.append(mig)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        conn.autocommit = False
