"""Database bootstrap of `caretaker up`: migrations, MQTT logins, the admin token, the demo."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import Any

import psycopg

from caretaker import tokens, users
from caretaker.clock import system_clock
from caretaker.db import connect
from caretaker.errors import NotFound
from caretaker.migrations import migrate
from caretaker.mqtt_credentials import ensure_service_credentials, sync_broker
from caretaker.servers import LocalMosquitto
from caretaker.settings import Settings
from caretaker.site_config import SiteConfigError, example_document
from dashboards.reader import ensure_reader
from stack.app import load_site
from stack.files import StackError, StackFiles, read_token, write_secret
from stack.status import DEMO_ROLE, DEMO_SITE, DEMO_USER, demo_login_file

log = logging.getLogger("stack.up")


def prepare_database(settings: Settings, paths: StackFiles, *, demo: bool,
                     broker: LocalMosquitto | None = None,
                     history_from: datetime | None = None) -> tuple[str, bool]:
    """Apply migrations, make sure the admin token exists, load the demo site; the admin token
    and whether the demo site was new (its history still to be backfilled).

    With the embedded `broker`, also the ingest's and simulator's logins: the broker's password
    and ACL files are written from the database and it reloads them.
    """
    with connect(settings.db_url()) as conn:
        applied = migrate(conn)
        if applied:
            log.info("applied %d migration(s)", len(applied))
        if settings.grafana_db_password is not None:
            ensure_reader(conn, settings.grafana_db_password.get_secret_value())
            conn.commit()
        if broker is not None:
            ensure_service_credentials(conn, paths.root)
            sync_broker(conn, broker)
        token = read_token(paths)
        if token is None or tokens.lookup(conn, token) is None:
            token = tokens.create_token(conn, role="admin", name="caretaker up")
            write_secret(paths.token, token)
            conn.commit()
        new = load_demo_site(conn, history_from) if demo else False
        if demo:
            ensure_demo_user(conn, paths)
            conn.commit()
    return token, new


def ensure_demo_user(conn: psycopg.Connection[Any], paths: StackFiles) -> str:
    """The demo's login (a supervisor of the example site) with the password kept in the
    state directory (mode 600); made, or given a new password, when the two disagree."""
    path = demo_login_file(paths)
    try:
        password = path.read_text().strip()
    except OSError:
        password = ""
    if password and users.password_matches(conn, DEMO_USER, password):
        return password
    password = secrets.token_urlsafe(12)
    try:
        users.get_user(conn, DEMO_USER)
    except NotFound:
        users.create_user(conn, DEMO_USER, password, role=DEMO_ROLE, site_id=DEMO_SITE)
    else:
        users.set_password(conn, DEMO_USER, password)
    write_secret(path, password)
    log.info("demo login %s created (password in %s)", DEMO_USER, path)
    return password


def load_demo_site(conn: psycopg.Connection[Any], history_from: datetime | None) -> bool:
    """Load the example site; when it is new and `history_from` is given, its schedules take
    effect from then (the backfilled history gets its runs). A reload keeps what was stored."""
    doc = example_document()
    new = conn.execute("SELECT 1 FROM sites WHERE id = %s",
                       (doc["site"]["id"],)).fetchone() is None
    if new and history_from is not None:
        for sched in doc.get("schedules") or []:
            sched.setdefault("effective_from", history_from.isoformat())
    try:
        result = load_site(conn, doc, now=system_clock())
    except SiteConfigError as exc:
        raise StackError(f"the example site could not be loaded: {exc}") from exc
    conn.commit()
    log.info("example site %s loaded (%d rows new or changed)", result.site_id,
             result.changed)
    return new
