"""The admin commands scripts rely on: `token create` prints the token alone on its last line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg

from caretaker.tokens import hash_token, lookup


def test_token_create_prints_the_token_alone_on_the_last_line(
        settings_env: dict[str, str], database: str) -> None:
    with psycopg.connect(database) as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES ('riverside', 'Riverside')")
    out = subprocess.run([sys.executable, "-m", "stack.cli", "token", "create", "--role",
                          "guard", "--site", "riverside", "--guard", "g-li"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    token = lines[-1]
    assert lines == [token] and token.startswith("ct_") and len(token) > 40
    with psycopg.connect(database) as conn:
        principal = lookup(conn, token)
    assert principal is not None
    assert (principal.role, principal.site_id, principal.guard_id) == ("guard", "riverside", "g-li")


def test_token_create_refuses_an_unknown_role(settings_env: dict[str, str]) -> None:
    out = subprocess.run([sys.executable, "-m", "stack.cli", "token", "create", "--role",
                          "janitor"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "unknown role 'janitor'" in out.stderr


def test_token_create_for_an_unknown_site_says_so(settings_env: dict[str, str]) -> None:
    out = subprocess.run([sys.executable, "-m", "stack.cli", "token", "create", "--role",
                          "viewer", "--site", "nowhere"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1 and "there is no site 'nowhere'" in out.stderr
    assert "Traceback" not in out.stderr


ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    # From the checkout, so `-m stack.cli` is this tree's command.
    return subprocess.run([sys.executable, "-m", "stack.cli", "token", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_token_expires_list_and_revoke(settings_env: dict[str, str], database: str) -> None:
    with psycopg.connect(database) as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES ('riverside', 'Riverside')")
    short = _cli("create", "--role", "viewer", "--site", "riverside", "--expires", "90d")
    default = _cli("create", "--role", "admin", "--name", "ops")
    assert short.returncode == 0 and default.returncode == 0, short.stderr + default.stderr
    t90, tdefault = short.stdout.splitlines()[-1], default.stdout.splitlines()[-1]
    with psycopg.connect(database) as conn:
        days = dict(conn.execute(  # type: ignore[arg-type]
            "SELECT prefix, extract(day FROM expires_at - created_at)::int FROM api_tokens"
        ).fetchall())
    assert days == {t90[3:11]: 90, tdefault[3:11]: 365}

    listed = _cli("list")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:3] == ["PREFIX", "ROLE", "SITE"] and "LAST USED" in header
    assert len(rows) == 2
    assert rows[0].split()[:3] == [t90[3:11], "viewer", "riverside"]
    assert rows[1].split()[:5] == [tdefault[3:11], "admin", "*", "-", "ops"]
    for token in (t90, tdefault):  # never the secret, nor its hash
        assert token not in listed.stdout and token[3:20] not in listed.stdout
        assert hash_token(token) not in listed.stdout

    revoked = _cli("revoke", t90[3:11])
    assert revoked.returncode == 0 and f"revoked the viewer token {t90[3:11]}" in revoked.stdout
    with psycopg.connect(database) as conn:
        assert lookup(conn, t90) is None and lookup(conn, tdefault) is not None
    assert [r.split()[0] for r in _cli("list").stdout.splitlines()[1:]] == [tdefault[3:11]]
    every = _cli("list", "--all").stdout.splitlines()[1:]
    assert every[0].split()[0] == t90[3:11] and every[0].split()[-1] == "revoked"
    again = _cli("revoke", t90[3:11])
    assert again.returncode == 1 and "no active token matches" in again.stderr


def test_token_create_refuses_a_bad_expiry(settings_env: dict[str, str]) -> None:
    out = _cli("create", "--role", "viewer", "--expires", "soon")
    assert out.returncode == 1 and "--expires" in out.stderr and "Traceback" not in out.stderr
