"""One pooled connection per request, and a pool that survives a database restart."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from caretaker.clock import FakeClock
from caretaker.servers import LocalPostgres
from caretaker.settings import Settings
from stack.app import api as create_app

API = "/api/v1"


def _app(monkeypatch: pytest.MonkeyPatch, clock: FakeClock, timeout: int) -> TestClient:
    monkeypatch.setenv("CARETAKER_DB_POOL_SIZE", "2")
    monkeypatch.setenv("CARETAKER_DB_POOL_TIMEOUT", str(timeout))
    return TestClient(create_app(Settings(), clock=clock))


@pytest.fixture
def pool_client(settings_env: dict[str, str], api_clock: FakeClock,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """An app with a pool of 2 connections that waits at most 3 s for one."""
    with _app(monkeypatch, api_clock, 3) as c:
        yield c


@pytest.fixture
def patient_pool_client(settings_env: dict[str, str], api_clock: FakeClock,
                        monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The same pool waiting up to 30 s: a deadlock still fails, a busy machine does not."""
    with _app(monkeypatch, api_clock, 30) as c:
        yield c


def _statuses(client: TestClient, headers: dict[str, str], n: int, workers: int) -> list[int]:
    with ThreadPoolExecutor(workers) as ex:
        return list(ex.map(lambda _: client.get(f"{API}/devices", headers=headers).status_code,
                           range(n)))


def test_many_more_clients_than_connections_all_succeed(
        patient_pool_client: TestClient, make_token: Callable[..., dict[str, str]]) -> None:
    # Two connections per request (token check + work) deadlocked a pool this small; and
    # more clients than worker threads (40), each waiting for a connection inside one,
    # starved the requests holding connections of a thread to finish on.
    headers = make_token("viewer")
    assert _statuses(patient_pool_client, headers, 60, 12) == [200] * 60
    assert _statuses(patient_pool_client, headers, 150, 50) == [200] * 150


def test_no_failed_request_once_a_restarted_database_is_back(
        pool_client: TestClient, pg_server: LocalPostgres,
        make_token: Callable[..., dict[str, str]]) -> None:
    headers = make_token("viewer")
    assert _statuses(pool_client, headers, 8, 4) == [200] * 8
    assert pool_client.app.state.pool.get_stats()["pool_size"] == 2  # type: ignore[attr-defined]
    pg_server.stop()
    try:
        # While it is down: the one error shape with 503, quickly, not a 500.
        r = pool_client.get(f"{API}/devices", headers=headers)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "unavailable"
    finally:
        pg_server.start()
    # Every pooled connection died with the server; none of them is handed out again.
    assert _statuses(pool_client, headers, 20, 4) == [200] * 20
    # And a restart nobody noticed while it lasted: the first requests find dead connections.
    assert pool_client.app.state.pool.get_stats()["pool_size"] == 2  # type: ignore[attr-defined]
    pg_server.stop()
    pg_server.start()
    assert _statuses(pool_client, headers, 20, 4) == [200] * 20
