"""MQTT credentials per device, guard handheld and service: stored hashed, rendered for Mosquitto.

Hashes use Mosquitto 2.0's own password-file format (`$7$<iterations>$<salt>$<hash>`,
PBKDF2-HMAC-SHA512 over a 12-byte salt, standard base64), so the password file is written
straight from the table and the plain password exists only in the `create` output.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from caretaker.errors import Conflict, Invalid, NotFound
from caretaker.servers import LocalMosquitto

KINDS = ("device", "guard", "service")
SERVICE_ROLES = ("ingest", "simulator")
ITERATIONS = 101  # Mosquitto's default; the passwords are 192 random bits, not guessable words
SALT_BYTES = 12
ROOT = "caretaker/v1"
INGEST_USER = "caretaker-ingest-{index}"
SIMULATOR_USER = "caretaker-simulator"
SECRETS_KEY = "mqtt_passwords"


@dataclass(frozen=True)
class Credential:
    """One live or revoked MQTT login and what it may do."""

    username: str
    kind: str
    site_id: str | None
    subject: str
    password_hash: str = ""
    created_at: datetime | None = None
    revoked_at: datetime | None = None

    def acl(self) -> list[str]:
        """The ACL file lines (`topic <access> <filter>`) granted to this login."""
        if self.kind == "device":
            base = f"{ROOT}/{self.site_id}/devices/{self.subject}"
            return [f"topic write {base}/telemetry", f"topic write {base}/status"]
        if self.kind == "guard":
            return [f"topic write {ROOT}/{self.site_id}/guards/{self.subject}/scans"]
        if self.subject == "ingest":
            return [f"topic read {ROOT}/#"]
        return [f"topic write {ROOT}/#"]

    def topics(self) -> list[str]:
        """The topic filters of the ACL, for people."""
        return [line.split(" ", 2)[2] for line in self.acl()]

    def public(self) -> dict[str, Any]:
        """What `list` shows (never the hash)."""
        return {"username": self.username, "kind": self.kind, "site": self.site_id,
                "subject": self.subject,
                "created": self.created_at.isoformat() if self.created_at else None,
                "revoked": self.revoked_at.isoformat() if self.revoked_at else None}


def hash_password(password: str, *, salt: bytes | None = None,
                  iterations: int = ITERATIONS) -> str:
    """Mosquitto's `$7$` PBKDF2-SHA512 hash of `password`."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return (f"$7${iterations}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


def verify_password(password: str, hashed: str) -> bool:
    """True when `password` matches a `$7$` hash."""
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
        if kind != "7":
            return False
        got = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt),
                                  int(iterations), 64)
    except ValueError:
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def new_password() -> str:
    return secrets.token_urlsafe(24)


def username_for(kind: str, site_id: str | None, subject: str) -> str:
    """`device/<site>/<id>`, `guard/<site>/<id>`: ids cannot hold `/`, so names never clash."""
    if kind not in ("device", "guard"):
        raise Invalid(f"kind must be device or guard, not {kind!r}")
    return f"{kind}/{site_id}/{subject}"


def ingest_username(index: int) -> str:
    return INGEST_USER.format(index=index)


# -- the table -----------------------------------------------------------------------------------

def _row(row: Any) -> Credential:
    if isinstance(row, dict):
        return Credential(**row)
    return Credential(*row)


def create(conn: psycopg.Connection[Any], *, kind: str, site_id: str | None = None,
           subject: str, username: str | None = None) -> tuple[Credential, str]:
    """Store a new credential; returns it and its password (shown once, stored hashed)."""
    if kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}")
    if kind == "service":
        if subject not in SERVICE_ROLES:
            raise Invalid(f"a service is one of {', '.join(SERVICE_ROLES)}")
        if not username:
            raise Invalid("a service credential needs a user name")
        site_id = None
    else:
        if not site_id:
            raise Invalid("a device or guard credential needs a site")
        username = username_for(kind, site_id, subject)
    password = new_password()
    with conn.transaction():
        if kind != "service" and conn.execute(
                "SELECT 1 FROM sites WHERE id = %s", (site_id,)).fetchone() is None:
            raise NotFound(f"there is no site {site_id!r}")
        if conn.execute("SELECT 1 FROM mqtt_credentials WHERE username = %s"
                        " AND revoked_at IS NULL", (username,)).fetchone():
            raise Conflict(f"{username} already has credentials: revoke them first")
        row = conn.execute(
            "INSERT INTO mqtt_credentials (username, kind, site_id, subject, password_hash)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING username, kind, site_id, subject,"
            " password_hash, created_at, revoked_at",
            (username, kind, site_id, subject, hash_password(password))).fetchone()
    return _row(row), password


def revoke(conn: psycopg.Connection[Any], username: str) -> bool:
    """Withdraw a live credential; False if there is none by that name."""
    with conn.transaction():
        cur = conn.execute("UPDATE mqtt_credentials SET revoked_at = now()"
                           " WHERE username = %s AND revoked_at IS NULL", (username,))
    return cur.rowcount > 0


def list_credentials(conn: psycopg.Connection[Any], *, revoked: bool = False
                     ) -> list[Credential]:
    """Credentials by user name (live only unless `revoked`)."""
    rows = conn.execute("SELECT username, kind, site_id, subject, password_hash, created_at,"
                        " revoked_at FROM mqtt_credentials WHERE %s OR revoked_at IS NULL"
                        " ORDER BY username, created_at", (revoked,)).fetchall()
    return [_row(r) for r in rows]


# -- the broker's files --------------------------------------------------------------------------


def render_password_file(creds: Iterable[Credential]) -> str:
    """Mosquitto's password file: `username:$7$...` per live credential."""
    return "".join(f"{c.username}:{c.password_hash}\n" for c in creds if c.revoked_at is None)


def render_acl(creds: Iterable[Credential]) -> str:
    """Mosquitto's ACL file: one `user` block per live credential; the rest is denied."""
    # `user` blocks name each login's topics literally. `pattern` lines would need the user
    # name to be a topic level (%u), and ours hold the site and id; literal lines also stay
    # right for ids with `.`, and ids cannot hold the wildcards `+`/`#` (ident domain).
    lines = ["# generated by caretaker from the mqtt_credentials table: do not edit\n"]
    for c in creds:
        if c.revoked_at is None:
            lines.append(f"\nuser {c.username}\n" + "".join(f"{a}\n" for a in c.acl()))
    return "".join(lines)


def write_files(directory: Path, creds: list[Credential], *, owner: str | None = None
                ) -> tuple[Path, Path]:
    """Write `passwords` and `acl` into `directory` (atomically; readable by `owner`)."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, text in (("passwords", render_password_file(creds)), ("acl", render_acl(creds))):
        path = directory / name
        tmp = directory / f".{name}.tmp"
        tmp.write_text(text)
        os.chmod(tmp, 0o600)
        if owner is not None and os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam(owner)
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
        tmp.replace(path)
        out.append(path)
    return out[0], out[1]


# -- service logins kept in the state directory ----------------------------------------------------


def _read_secrets(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text())) if path.exists() else {}


def stored_password(state_dir: Path, username: str) -> str | None:
    """A service login's password from `<state>/secrets.json`, if Caretaker created it."""
    value = _read_secrets(state_dir / "secrets.json").get(SECRETS_KEY, {}).get(username)
    return str(value) if value else None


def ensure_service_credentials(conn: psycopg.Connection[Any], state_dir: Path, *,
                               ingest_workers: int = 1) -> bool:
    """Create (once) the ingest workers' and simulator's logins; True if any was created.

    Their passwords live in `<state>/secrets.json` (mode 600) beside the database password;
    a login whose password was lost from that file is replaced.
    """
    path = state_dir / "secrets.json"
    data = _read_secrets(path)
    known: dict[str, str] = dict(data.get(SECRETS_KEY, {}))
    wanted = [(ingest_username(i), "ingest") for i in range(ingest_workers)]
    wanted.append((SIMULATOR_USER, "simulator"))
    live = {c.username: c for c in list_credentials(conn)}
    changed = False
    for username, role in wanted:
        cred = live.get(username)
        if cred is not None and username in known and verify_password(known[username],
                                                                       cred.password_hash):
            continue
        if cred is not None:
            revoke(conn, username)
        _, known[username] = create(conn, kind="service", subject=role, username=username)
        changed = True
    if changed:
        data[SECRETS_KEY] = known
        _write_secrets(path, data)
    return changed


def sync_broker(conn: psycopg.Connection[Any], broker: LocalMosquitto) -> bool:
    """Write the embedded broker's files from the table and make it reload them.

    A client whose login is revoked is disconnected by the reload (Mosquitto 2.0 checks every
    connected client's user name and password again) and refused from then on.
    """
    write_files(broker.root, list_credentials(conn), owner=broker.owner)
    return broker.reload()


def device_logins(conn: psycopg.Connection[Any], state_dir: Path,
                  keys: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Logins for devices the simulator connects as (`site/device` keys), on the embedded broker.

    Created once and kept in `<state>/secrets.json` like the service logins (one whose password
    is not there is replaced); devices of sites the database does not know get none.
    """
    path = state_dir / "secrets.json"
    data = _read_secrets(path)
    known: dict[str, str] = dict(data.get(SECRETS_KEY, {}))
    live = {c.username: c for c in list_credentials(conn)}
    sites = {r[0] if not isinstance(r, dict) else r["id"]
             for r in conn.execute("SELECT id FROM sites").fetchall()}
    out: dict[str, tuple[str, str]] = {}
    changed = False
    for key in keys:
        site, _, device = key.partition("/")
        if site not in sites:
            continue
        username = username_for("device", site, device)
        cred = live.get(username)
        if cred is None or username not in known or not verify_password(known[username],
                                                                         cred.password_hash):
            if cred is not None:
                revoke(conn, username)
            _, known[username] = create(conn, kind="device", site_id=site, subject=device)
            changed = True
        out[key] = (username, known[username])
    if changed:
        data[SECRETS_KEY] = known
        _write_secrets(path, data)
    return out


def _write_secrets(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
