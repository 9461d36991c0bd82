"""Users: the lock-out decisions (pure), the stored hashes, the `caretaker user` commands and
the demo's login."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from argon2 import PasswordHasher

from caretaker.errors import Conflict, Invalid
from caretaker.users import (
    LockPolicy,
    Outcome,
    Throttle,
    after_failure,
    authenticate,
    create_user,
    get_user,
    is_locked,
    password_matches,
)
from stack.bootstrap import ensure_demo_user
from stack.files import StackFiles
from stack.status import banner, demo_login_file

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
POLICY = LockPolicy(name_limit=3, address_limit=100, lockout=WINDOW)
PASSWORD = "correct horse battery"


def test_the_limit_th_failure_in_a_row_locks_for_the_window() -> None:
    t = Throttle()
    for n in (1, 2):
        t = after_failure(t, T0, limit=3, window=WINDOW)
        assert (t.failures, is_locked(t, T0)) == (n, False)
    t = after_failure(t, T0, limit=3, window=WINDOW)
    assert is_locked(t, T0) and is_locked(t, T0 + WINDOW - timedelta(seconds=1))
    assert not is_locked(t, T0 + WINDOW)
    assert t.failures == 0  # counted afresh after the lock


def test_a_failure_after_a_quiet_window_starts_a_new_run() -> None:
    t = after_failure(Throttle(), T0, limit=3, window=WINDOW)
    t = after_failure(t, T0 + timedelta(minutes=1), limit=3, window=WINDOW)
    t = after_failure(t, T0 + timedelta(minutes=17), limit=3, window=WINDOW)
    assert (t.failures, t.locked_until) == (1, None)


@pytest.fixture
def site(conn: psycopg.Connection[Any]) -> str:
    conn.execute("INSERT INTO sites (id, name) VALUES ('riverside', 'Riverside')")
    conn.execute("INSERT INTO guards (site_id, id, name) VALUES ('riverside', 'g-li', 'Li')")
    conn.commit()
    return "riverside"


def test_users_are_checked_and_stored_as_argon2id_hashes(conn: psycopg.Connection[Any],
                                                         site: str) -> None:
    user = create_user(conn, "Ann", PASSWORD, role="guard", site_id=site, guard_id="g-li")
    stored = conn.execute("SELECT password_hash FROM users WHERE id = %s",
                          (user.id,)).fetchone()["password_hash"]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    with pytest.raises(Conflict):
        create_user(conn, "ann", PASSWORD, role="viewer")  # names are one in any case
    for bad in ({"name": "x y"}, {"password": "short"}, {"role": "janitor"},
                {"site_id": "nowhere"}, {"guard_id": "g-li", "role": "viewer"},
                {"guard_id": "g-nobody", "role": "guard", "site_id": site},
                {"language": "fr"}):
        args: dict[str, Any] = {"name": "bob", "password": PASSWORD, "role": "viewer", **bad}
        with pytest.raises(Invalid):
            create_user(conn, args.pop("name"), args.pop("password"), **args)


def test_a_hash_made_with_other_parameters_is_replaced_at_login(
        conn: psycopg.Connection[Any]) -> None:
    create_user(conn, "ann", PASSWORD, role="viewer")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    conn.execute("UPDATE users SET password_hash = %s WHERE name = 'ann'", (weak,))
    result = authenticate(conn, "ann", PASSWORD, address="127.0.0.1", now=T0, policy=POLICY)
    assert result.outcome is Outcome.OK
    stored = conn.execute("SELECT password_hash FROM users").fetchone()["password_hash"]
    assert stored != weak and "m=65536,t=3,p=4" in stored
    assert password_matches(conn, "ann", PASSWORD)


def test_failures_are_written_for_users_and_for_names_that_are_none(
        conn: psycopg.Connection[Any]) -> None:
    create_user(conn, "ann", PASSWORD, role="viewer")
    for _ in range(3):
        for name in ("ann", "ghost"):
            assert authenticate(conn, name, "guess", address="10.0.0.9", now=T0,
                                policy=POLICY).outcome is Outcome.WRONG
    assert get_user(conn, "ann").locked_until == T0 + WINDOW
    ghost = conn.execute("SELECT locked_until FROM login_throttle WHERE kind = 'name'"
                         " AND key = 'ghost'").fetchone()
    assert ghost["locked_until"] == T0 + WINDOW
    address = conn.execute("SELECT failures FROM login_throttle WHERE kind = 'address'"
                           ).fetchone()
    assert address["failures"] == 6
    for name, password in (("ann", PASSWORD), ("ghost", "guess")):
        assert authenticate(conn, name, password, address="10.0.0.9", now=T0,
                            policy=POLICY).outcome is Outcome.LOCKED


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stack.cli", "user", *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_the_user_commands(settings_env: dict[str, str], database: str) -> None:
    with psycopg.connect(database) as c:
        c.execute("INSERT INTO sites (id, name) VALUES ('riverside', 'Riverside')")
    secret = "a secret never shown 42"
    out = _cli("create", "ann", "--role", "supervisor", "--site", "riverside",
               "--password-stdin", stdin=secret + "\n")
    assert out.returncode == 0, out.stderr
    assert "created user ann (supervisor, site riverside)" in out.stdout
    short = _cli("create", "bob", "--role", "viewer", "--password-stdin", stdin="abc\n")
    assert short.returncode == 1 and "at least 10 characters" in short.stderr
    assert _cli("create", "carl", "--role", "viewer", stdin=secret).returncode == 1

    listed = _cli("list")
    assert listed.returncode == 0
    row = [line for line in listed.stdout.splitlines() if line.startswith("ann ")]
    assert row and "supervisor" in row[0] and "riverside" in row[0] and "active" in row[0]

    assert _cli("disable", "ann").returncode == 0
    assert "disabled" in _cli("list").stdout
    new = "another secret 1234"
    changed = _cli("password", "ann", "--password-stdin", stdin=new + "\n")
    assert changed.returncode == 0 and "changed the password of user ann" in changed.stdout
    assert _cli("disable", "nobody").returncode == 1
    for result in (out, short, listed, changed):
        assert secret not in result.stdout + result.stderr
        assert new not in result.stdout + result.stderr
    with psycopg.connect(database) as c:
        assert password_matches(c, "ann", new) and not password_matches(c, "ann", secret)


def test_the_demo_login_is_made_once_and_printed_in_the_banner(
        conn: psycopg.Connection[Any], site: str, tmp_path: Path) -> None:
    paths = StackFiles(tmp_path)
    password = ensure_demo_user(conn, paths)
    assert ensure_demo_user(conn, paths) == password  # kept across restarts
    path = demo_login_file(paths)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    user = get_user(conn, "demo")
    assert (user.role, user.site_id) == ("supervisor", "riverside")
    assert password_matches(conn, "demo", password)
    # A password changed behind the file's back is replaced (file and user agree again).
    path.write_text("stale-password\n")
    again = ensure_demo_user(conn, paths)
    assert again != "stale-password" and password_matches(conn, "demo", again)

    from caretaker.settings import Settings

    text = banner(Settings(state_dir=tmp_path), {
        "api_url": "http://127.0.0.1:8000/api/v1", "mqtt_url": "mqtt://127.0.0.1:1883",
        "database": "db", "logs": "logs", "demo": True}, token="ct_x")
    assert "http://127.0.0.1:8000/" in text and f"user demo   password {again}" in text
