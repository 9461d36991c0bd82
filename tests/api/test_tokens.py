"""Tokens: expired and revoked ones are refused at once; last use is recorded, cheaply."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from caretaker.errors import Conflict, Invalid, NotFound
from caretaker.tokens import PREFIX, create_token, list_tokens, new_token, prefix_of, revoke

API = "/api/v1"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _token(database: str, **kw: Any) -> str:
    with psycopg.connect(database) as conn:
        return create_token(conn, role=kw.pop("role", "viewer"), **kw)


def _refused(r: Any) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_anew_token_expires_after_the_default_lifetime(database: str,
                                                        settings_env: dict[str, str]) -> None:
    _token(database)
    _token(database, expires=timedelta(days=90))
    _token(database, expires="never")
    with psycopg.connect(database) as conn:
        tokens = list_tokens(conn)
        lifetimes = [conn.execute("SELECT %s::timestamptz - %s::timestamptz",
                                  (t.expires_at, t.created_at)).fetchone()[0]  # type: ignore[index]
                     if t.expires_at else None for t in tokens]
    assert lifetimes == [timedelta(days=365), timedelta(days=90), None]


def test_an_expired_token_is_refused_at_once(client: TestClient, database: str) -> None:
    token = _token(database)
    assert client.get(f"{API}/sites", headers=_bearer(token)).status_code == 200
    with psycopg.connect(database) as conn:
        conn.execute("UPDATE api_tokens SET expires_at = now() - interval '1 second'")
    _refused(client.get(f"{API}/sites", headers=_bearer(token)))


def test_a_revoked_token_is_refused_at_once(client: TestClient, database: str) -> None:
    token, other = _token(database), _token(database)
    assert client.get(f"{API}/sites", headers=_bearer(token)).status_code == 200
    with psycopg.connect(database) as conn:
        info = revoke(conn, prefix_of(token))
    assert info.prefix == prefix_of(token) == token[3:11]
    _refused(client.get(f"{API}/sites", headers=_bearer(token)))
    assert client.get(f"{API}/sites", headers=_bearer(other)).status_code == 200


def test_missing_and_unknown_tokens_are_refused(client: TestClient) -> None:
    _refused(client.get(f"{API}/sites"))
    _refused(client.get(f"{API}/sites", headers=_bearer("ct_nonsense")))


def test_last_use_is_recorded_at_most_once_a_minute(client: TestClient, database: str) -> None:
    token = _token(database)

    def last_used() -> Any:
        with psycopg.connect(database) as conn:
            return conn.execute("SELECT last_used_at FROM api_tokens").fetchone()[0]  # type: ignore[index]

    assert last_used() is None
    client.get(f"{API}/sites", headers=_bearer(token))
    first = last_used()
    assert first is not None
    client.get(f"{API}/sites", headers=_bearer(token))
    assert last_used() == first
    with psycopg.connect(database) as conn:
        conn.execute("UPDATE api_tokens SET last_used_at = now() - interval '2 minutes'")
    client.get(f"{API}/sites", headers=_bearer(token))
    assert last_used() > first


def test_revoke_wants_one_active_token(database: str, settings_env: dict[str, str]) -> None:
    token = _token(database)
    with psycopg.connect(database) as conn:
        with pytest.raises(Invalid):
            revoke(conn, "ab")
        with pytest.raises(NotFound):
            revoke(conn, "zzzzzzzz" if not token[3:].startswith("zzzz") else "yyyyyyyy")
        conn.execute("UPDATE api_tokens SET prefix = 'same1234'")
        _token(database)
        conn.commit()
        conn.execute("UPDATE api_tokens SET prefix = 'same1234'")
        with pytest.raises(Conflict):
            revoke(conn, "same")
        first = list_tokens(conn)[0]
        assert revoke(conn, f"#{first.id}").id == first.id
        assert len(list_tokens(conn)) == 1
        assert len(list_tokens(conn, include_inactive=True)) == 2


def test_a_token_prefix_never_starts_with_a_dash() -> None:
    # 1 in 64 secrets starts with "-": in a thousand, unfiltered, one would (p > 0.9999998)
    assert not any(new_token().removeprefix(PREFIX).startswith("-") for _ in range(1000))
