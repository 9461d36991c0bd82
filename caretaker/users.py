"""People's logins: users with argon2id password hashes, a role and an optional site.

A user stands for the same things a token does (role, site, guard) and so becomes the same
`Principal`. Failed logins are counted per user name (on the user, or in `login_throttle`
for a name that is no user, so both lock out alike) and per client address; the decisions
are pure functions (`after_failure`, `is_locked`), the caller loads and saves the counters.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from functools import cache
from typing import Any

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg.rows import dict_row

from caretaker.errors import Conflict, Invalid, NotFound
from caretaker.tokens import ROLES

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
LANGUAGES = ("zh-CN", "en")
# Longer passwords are refused before hashing: argon2 hashes any length, but a megabyte of
# "password" per attempt is work nobody needs to be able to ask for.
PASSWORD_MAX = 1024

# argon2-cffi's defaults (RFC 9106's second recommendation); a hash made with other
# parameters is replaced at the next successful login (`check_needs_rehash`).
hasher = PasswordHasher()


@dataclass(frozen=True)
class User:
    """A person's login as `user list` shows it: never the password or its hash."""

    id: int
    name: str
    role: str
    site_id: str | None
    guard_id: str | None
    language: str | None
    disabled: bool
    failed_attempts: int
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None


USER_COLUMNS = ("id, name, role, site_id, guard_id, language, disabled, failed_attempts,"
                " locked_until, created_at, last_login_at")


def check_name(name: str) -> str:
    """A valid user name: up to 64 letters, digits and . _ @ -, starting with a letter or digit."""
    if not NAME.match(name):
        raise Invalid("a user name is 1-64 letters, digits or . _ @ -, starting with a letter "
                      "or digit")
    return name


def check_password(password: str, *, min_length: int) -> str:
    """A password long enough (and not absurdly long); never echoed in the error."""
    if len(password) < min_length:
        raise Invalid(f"a password has at least {min_length} characters")
    if len(password) > PASSWORD_MAX:
        raise Invalid(f"a password has at most {PASSWORD_MAX} characters")
    return password


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string) of a password."""
    return hasher.hash(password)


@cache
def _dummy_hash() -> str:
    """A hash no password matches: verified against when the name is no user (same work)."""
    return hasher.hash(secrets.token_urlsafe(24))


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether the password matches; with no hash, the same work is done and False returned."""
    try:
        hasher.verify(password_hash or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return password_hash is not None


def _user(row: dict[str, Any]) -> User:
    return User(**{k: row[k] for k in User.__dataclass_fields__})


def create_user(conn: psycopg.Connection[Any], name: str, password: str, *, role: str,
                site_id: str | None = None, guard_id: str | None = None,
                language: str | None = None, min_length: int = 10) -> User:
    """Store a new user with the hash of its password (Conflict if the name is taken)."""
    check_name(name)
    check_password(password, min_length=min_length)
    if role not in ROLES:
        raise Invalid(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if guard_id is not None and role != "guard":
        raise Invalid("only a guard user has a guard id")
    if language is not None and language not in LANGUAGES:
        raise Invalid(f"unknown language {language!r}; one of {', '.join(LANGUAGES)}")
    cur = conn.cursor(row_factory=dict_row)
    if site_id is not None and cur.execute("SELECT 1 FROM sites WHERE id = %s",
                                           (site_id,)).fetchone() is None:
        raise Invalid(f"there is no site {site_id!r}")
    if guard_id is not None and site_id is not None and cur.execute(
            "SELECT 1 FROM guards WHERE site_id = %s AND id = %s",
            (site_id, guard_id)).fetchone() is None:
        raise Invalid(f"site {site_id!r} has no guard {guard_id!r}")
    insert = ("INSERT INTO users (name, password_hash, role, site_id, guard_id, language)"
              " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING ")
    row = cur.execute(
        insert + USER_COLUMNS,  # noqa: S608 - a constant column list
        (name, hash_password(password), role, site_id, guard_id, language)).fetchone()
    if row is None:
        raise Conflict(f"there is a user {name!r} already")
    return _user(row)


def get_user(conn: psycopg.Connection[Any], name: str) -> User:
    """The user of this name (any case); NotFound otherwise."""
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT " + USER_COLUMNS + " FROM users WHERE lower(name) = lower(%s)",  # noqa: S608
        (name,)).fetchone()
    if row is None:
        raise NotFound(f"there is no user {name!r}")
    return _user(row)


def list_users(conn: psycopg.Connection[Any], *, limit: int = 10000) -> list[User]:
    """The users by name (at most `limit`)."""
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT " + USER_COLUMNS + " FROM users ORDER BY lower(name) LIMIT %s",  # noqa: S608
        (limit,)).fetchall()
    return [_user(r) for r in rows]


def set_disabled(conn: psycopg.Connection[Any], name: str, disabled: bool = True) -> User:
    """Disable (or enable) a user; disabling ends the user's sessions at once."""
    user = get_user(conn, name)
    conn.execute("UPDATE users SET disabled = %s WHERE id = %s", (disabled, user.id))
    if disabled:
        conn.execute("DELETE FROM sessions WHERE user_id = %s", (user.id,))
    return get_user(conn, name)


def set_password(conn: psycopg.Connection[Any], name: str, password: str, *,
                 min_length: int = 10) -> User:
    """Give a user a new password: its sessions end and any lock-out is lifted."""
    check_password(password, min_length=min_length)
    user = get_user(conn, name)
    conn.execute("UPDATE users SET password_hash = %s, failed_attempts = 0,"
                 " last_failed_at = NULL, locked_until = NULL WHERE id = %s",
                 (hash_password(password), user.id))
    conn.execute("DELETE FROM sessions WHERE user_id = %s", (user.id,))
    return get_user(conn, name)


def password_matches(conn: psycopg.Connection[Any], name: str, password: str) -> bool:
    """Whether a user of this name exists with this password (nothing is counted)."""
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT password_hash FROM users WHERE lower(name) = lower(%s)", (name,)).fetchone()
    return row is not None and verify_password(row["password_hash"], password)


# --- lock-out: pure decisions -------------------------------------------------------------

@dataclass(frozen=True)
class Throttle:
    """Failed logins in a row of one user name or client address, and its lock-out."""

    failures: int = 0
    last_failed_at: datetime | None = None
    locked_until: datetime | None = None


@dataclass(frozen=True)
class LockPolicy:
    """How many failures in a row lock out a name or an address, and for how long."""

    name_limit: int
    address_limit: int
    lockout: timedelta


def is_locked(t: Throttle, now: datetime) -> bool:
    """Whether logins are refused now without looking at the password."""
    return t.locked_until is not None and now < t.locked_until


def after_failure(t: Throttle, now: datetime, *, limit: int, window: timedelta) -> Throttle:
    """The counter after one more failure: a run older than `window` starts again at 1; the
    `limit`-th failure locks for `window` and starts the count afresh."""
    recent = t.last_failed_at is not None and now - t.last_failed_at < window
    failures = (t.failures if recent else 0) + 1
    if failures >= limit:
        return Throttle(0, now, now + window)
    return Throttle(failures, now, None)


class Outcome(Enum):
    """What a login attempt came to."""

    OK = "ok"
    WRONG = "wrong"        # unknown name or wrong password: one answer for both
    LOCKED = "locked"      # too many failures for this name or this address
    DISABLED = "disabled"  # right password, but the user is disabled


@dataclass(frozen=True)
class LoginResult:
    outcome: Outcome
    user: User | None = None


def _throttle(conn: psycopg.Connection[Any], kind: str, key: str) -> Throttle:
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT failures, last_failed_at, locked_until FROM login_throttle"
        " WHERE kind = %s AND key = %s FOR UPDATE", (kind, key)).fetchone()
    return Throttle(**row) if row else Throttle()


def _save_throttle(conn: psycopg.Connection[Any], kind: str, key: str, t: Throttle) -> None:
    conn.execute("INSERT INTO login_throttle (kind, key, failures, last_failed_at, locked_until)"
                 " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (kind, key) DO UPDATE SET"
                 " failures = EXCLUDED.failures, last_failed_at = EXCLUDED.last_failed_at,"
                 " locked_until = EXCLUDED.locked_until",
                 (kind, key, t.failures, t.last_failed_at, t.locked_until))


def authenticate(conn: psycopg.Connection[Any], name: str, password: str, *, address: str,
                 now: datetime, policy: LockPolicy) -> LoginResult:
    """Check a login and count its failure; the caller commits (a failure is also written).

    A locked name or address is refused before the password is looked at. An unknown name
    costs the same hash verification as a known one and is counted and locked the same way.
    """
    # Forget runs of failures that can no longer lock anything (a bounded table).
    conn.execute("DELETE FROM login_throttle WHERE last_failed_at < %s"
                 " AND (locked_until IS NULL OR locked_until < %s)",
                 (now - policy.lockout, now))
    by_address = _throttle(conn, "address", address)
    if is_locked(by_address, now):
        return LoginResult(Outcome.LOCKED)
    row = None
    if NAME.match(name) and len(password) <= PASSWORD_MAX:
        row = conn.cursor(row_factory=dict_row).execute(
            "SELECT " + USER_COLUMNS + ", password_hash, last_failed_at FROM users"  # noqa: S608
            " WHERE lower(name) = lower(%s) FOR UPDATE", (name,)).fetchone()
    if row is not None:
        by_name = Throttle(row["failed_attempts"], row["last_failed_at"], row["locked_until"])
    else:
        by_name = _throttle(conn, "name", name.lower()[:64])
    if is_locked(by_name, now):
        return LoginResult(Outcome.LOCKED)
    if verify_password(row["password_hash"] if row else None, password[:PASSWORD_MAX]):
        assert row is not None
        if hasher.check_needs_rehash(row["password_hash"]):
            conn.execute("UPDATE users SET password_hash = %s WHERE id = %s",
                         (hash_password(password), row["id"]))
        if row["disabled"]:
            return LoginResult(Outcome.DISABLED, _user(row))
        conn.execute("UPDATE users SET failed_attempts = 0, last_failed_at = NULL,"
                     " locked_until = NULL, last_login_at = %s WHERE id = %s", (now, row["id"]))
        return LoginResult(Outcome.OK, _user(row))
    # A failure: counted for the name and for the address; the address's run is never reset
    # by a success (one good account must not buy an address more guesses at others).
    name_after = after_failure(by_name, now, limit=policy.name_limit, window=policy.lockout)
    if row is not None:
        conn.execute("UPDATE users SET failed_attempts = %s, last_failed_at = %s,"
                     " locked_until = %s WHERE id = %s",
                     (name_after.failures, name_after.last_failed_at, name_after.locked_until,
                      row["id"]))
    else:
        _save_throttle(conn, "name", name.lower()[:64], name_after)
    _save_throttle(conn, "address", address, after_failure(
        by_address, now, limit=policy.address_limit, window=policy.lockout))
    return LoginResult(Outcome.WRONG)
