"""The read-only database role Grafana connects as: it may read the tables and columns the
dashboards read (never residents' names, phones or rooms), write nothing, and its queries are
bounded in time. Created or updated by `caretaker up` (when CARETAKER_GRAFANA_DB_PASSWORD is
set) and by `caretaker dashboards reader`."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

READER = "caretaker_reader"
STATEMENT_TIMEOUT = "30s"  # a dashboard refresh never waits longer than this on one panel
CONNECTIONS = 20
# Whole tables the dashboards read (no personal data in them).
TABLES = ("sites", "zones", "device_types", "devices", "rules", "telemetry", "device_status",
          "alarms", "work_order_refs", "patrol_runs", "patrol_visits", "inspection_gaps",
          "kpi_targets")
# Tables with residents' details: only these columns (the KPI functions and panels need no more).
COLUMNS = {
    "work_orders": ("id", "site_id", "device_id", "rule_id", "alarm_id", "source",
                    "source_ref", "severity", "priority", "title", "state", "opened_at",
                    "respond_by", "resolve_by", "acknowledged_at", "started_at",
                    "resolved_at", "closed_at", "cancelled_at", "overdue", "repeat_of",
                    "repeat_count", "category", "urgency", "channel", "zone_id",
                    "checkpoint_id", "rework_count"),
    "complaints": ("id", "site_id", "number", "grade", "category", "channel", "state",
                   "team", "opened_at", "answer_by", "answered_at", "closed_at",
                   "resolution", "rework_count", "overdue", "work_order_id"),
    "follow_ups": ("id", "site_id", "work_order_id", "complaint_id", "at", "channel",
                   "outcome", "satisfaction"),
}


def ensure_reader(conn: psycopg.Connection[Any], password: str) -> None:
    """Create or update the reader role with this password and (re)grant exactly its reads in
    the connected database. The password travels as a SCRAM verifier, never in clear."""
    if not password:
        raise ValueError("the reader role needs a password")
    role = sql.Identifier(READER)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER,)).fetchone()
    if not exists:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(role))
        except psycopg.errors.DuplicateObject:  # another database's bootstrap made it
            pass
    verifier = conn.pgconn.encrypt_password(password.encode(), READER.encode(),
                                            b"scram-sha-256").decode()
    statements = [
        sql.SQL("ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
                " NOBYPASSRLS NOINHERIT CONNECTION LIMIT {} PASSWORD {}").format(
            role, sql.Literal(CONNECTIONS), sql.Literal(verifier)),
        sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(role),
        sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(
            role, sql.Literal(STATEMENT_TIMEOUT)),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(conn.info.dbname), role),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role),
        # start from nothing, so a table dropped from the lists is no longer readable
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(role),
        sql.SQL("GRANT SELECT ON {} TO {}").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in TABLES), role),
    ]
    for table, columns in COLUMNS.items():
        statements.append(sql.SQL("GRANT SELECT ({}) ON {} TO {}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.Identifier(table),
            role))
    with conn.transaction():
        for statement in statements:
            conn.execute(statement)
