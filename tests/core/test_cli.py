"""The admin commands scripts rely on: `token create` prints the token alone on its last line."""

from __future__ import annotations

import subprocess
import sys

import psycopg

from caretaker.tokens import lookup


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
