"""API tokens: random bearer secrets stored only as SHA-256 hashes, each with a role."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg

ROLES = ("admin", "supervisor", "engineer", "guard", "viewer")
PREFIX = "ct_"


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the token's role, and the one site it is limited to, if any."""

    token_id: int
    name: str
    role: str
    site_id: str | None = None
    guard_id: str | None = None

    @property
    def actor(self) -> str:
        """How this principal is named in history records."""
        return self.guard_id or self.name


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(conn: psycopg.Connection[Any], *, role: str, name: str | None = None,
                 site_id: str | None = None, guard_id: str | None = None) -> str:
    """Store a new token's hash and return the token (shown once, never stored)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    token = PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO api_tokens (name, token_hash, role, site_id, guard_id)"
        " VALUES (%s, %s, %s, %s, %s)",
        (name or f"{role}{'@' + site_id if site_id else ''}", hash_token(token), role, site_id,
         guard_id),
    )
    return token


def lookup(conn: psycopg.Connection[Any], token: str) -> Principal | None:
    """The principal a presented token stands for, or None if unknown or revoked."""
    row = conn.execute(
        "SELECT id, name, role, site_id, guard_id FROM api_tokens"
        " WHERE token_hash = %s AND revoked_at IS NULL",
        (hash_token(token),),
    ).fetchone()
    if row is None:
        return None
    if not isinstance(row, dict):
        row = dict(zip(("id", "name", "role", "site_id", "guard_id"), row, strict=True))
    return Principal(row["id"], row["name"], row["role"], row["site_id"], row["guard_id"])
