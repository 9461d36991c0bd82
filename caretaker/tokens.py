"""API tokens: random bearer secrets stored only as SHA-256 hashes, each with a role.

A token may expire and may be revoked; either way it is refused at once. Its first
characters after `ct_` (the prefix) are kept in clear so a token can be listed and revoked
without ever showing or storing the secret.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg

from caretaker.errors import Conflict, Invalid, NotFound
from caretaker.settings import get_settings

ROLES = ("admin", "supervisor", "engineer", "frontdesk", "guard", "viewer")
PREFIX = "ct_"
PREFIX_CHARS = 8  # of the random part, shown by `token list`
# A token's last-used time is written at most this often (a write per request would not be).
LAST_USED_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the token's role, and the one site it is limited to, if any.

    A person logged in with a session is a principal too: `user_id` is the user's id,
    `token_id` minus it (never a token's id, so "the same credential" checks still hold) and
    `language` the user's chosen language (None: the site's).
    """

    token_id: int
    name: str
    role: str
    site_id: str | None = None
    guard_id: str | None = None
    user_id: int | None = None
    language: str | None = None

    @property
    def actor(self) -> str:
        """How this principal is named in history records."""
        return self.guard_id or self.name


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh secret whose listed prefix never starts with "-" (`caretaker token revoke
    PREFIX` would read it as an option)."""
    while True:
        token = PREFIX + secrets.token_urlsafe(32)
        if not token.removeprefix(PREFIX).startswith("-"):
            return token


def prefix_of(token: str) -> str:
    """The listed, non-secret part of a token: its first characters after `ct_`."""
    return token.removeprefix(PREFIX)[:PREFIX_CHARS]


def create_token(conn: psycopg.Connection[Any], *, role: str, name: str | None = None,
                 site_id: str | None = None, guard_id: str | None = None,
                 expires: timedelta | Literal["never"] | None = None) -> str:
    """Store a new token's hash and return the token (shown once, never stored).

    `expires` is its lifetime from now; None takes the `token_default_expiry` setting and
    "never" makes a token that does not expire.
    """
    if role not in ROLES:
        raise Invalid(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    lifetime = get_settings().token_default_expiry if expires is None else expires
    if isinstance(lifetime, timedelta) and lifetime <= timedelta(0):
        raise Invalid("a token's lifetime must be positive")
    token = new_token()
    conn.execute(
        "INSERT INTO api_tokens (name, token_hash, role, site_id, guard_id, prefix, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, now() + %s)",
        (name or f"{role}{'@' + site_id if site_id else ''}", hash_token(token), role, site_id,
         guard_id, prefix_of(token), None if lifetime == "never" else lifetime),
    )
    return token


def lookup(conn: psycopg.Connection[Any], token: str) -> Principal | None:
    """The principal a presented token stands for, or None if unknown, revoked or expired.

    Marks the token used (at most once a minute; a row another request is marking is
    skipped rather than waited for).
    """
    row = conn.execute(
        "SELECT id, name, role, site_id, guard_id,"
        " last_used_at IS NULL OR last_used_at < now() - %s AS stale FROM api_tokens"
        " WHERE token_hash = %s AND revoked_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > now())",
        (LAST_USED_EVERY, hash_token(token)),
    ).fetchone()
    if row is None:
        return None
    if not isinstance(row, dict):
        row = dict(zip(("id", "name", "role", "site_id", "guard_id", "stale"), row, strict=True))
    if row["stale"]:
        conn.execute(
            "UPDATE api_tokens SET last_used_at = now() WHERE id = ("
            " SELECT id FROM api_tokens WHERE id = %s FOR UPDATE SKIP LOCKED)",
            (row["id"],))
    return Principal(row["id"], row["name"], row["role"], row["site_id"], row["guard_id"])


@dataclass(frozen=True)
class TokenInfo:
    """What `caretaker token list` shows of a token: never its secret or hash."""

    id: int
    prefix: str | None
    name: str
    role: str
    site_id: str | None
    guard_id: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    expired: bool


def list_tokens(conn: psycopg.Connection[Any], *, include_inactive: bool = False
                ) -> list[TokenInfo]:
    """The tokens, oldest first; revoked and expired ones only when asked for."""
    rows = conn.execute(
        "SELECT id, prefix, name, role, site_id, guard_id, created_at, expires_at,"
        " last_used_at, revoked_at, coalesce(expires_at <= now(), false) AS expired"
        " FROM api_tokens ORDER BY created_at, id").fetchall()
    infos = [TokenInfo(**(r if isinstance(r, dict) else dict(zip(TOKEN_FIELDS, r, strict=True))))
             for r in rows]
    return [t for t in infos
            if include_inactive or (t.revoked_at is None and not t.expired)]


TOKEN_FIELDS = ("id", "prefix", "name", "role", "site_id", "guard_id", "created_at",
                "expires_at", "last_used_at", "revoked_at", "expired")


def revoke(conn: psycopg.Connection[Any], prefix: str) -> TokenInfo:
    """Revoke the one active token with this prefix (or `#ID`, or the token itself).

    NotFound if no active token has it; Conflict if several do (give more of the prefix).
    """
    active = list_tokens(conn)
    if prefix.startswith("#") and prefix[1:].isdigit():
        matches = [t for t in active if t.id == int(prefix[1:])]
    else:
        wanted = prefix_of(prefix) if prefix.startswith(PREFIX) else prefix
        if len(wanted) < 4:
            raise Invalid("give at least 4 characters of a token's prefix, as "
                          "`caretaker token list` shows it")
        matches = [t for t in active if t.prefix is not None and t.prefix.startswith(wanted)]
    if not matches:
        raise NotFound(f"no active token matches {prefix!r}")
    if len(matches) > 1:
        raise Conflict(f"{len(matches)} active tokens match {prefix!r}; give more of the prefix")
    conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = %s", (matches[0].id,))
    return matches[0]
