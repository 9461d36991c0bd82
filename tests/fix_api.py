"""Fixtures for API tests: an app on this test's database, and tokens of any role."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from caretaker.clock import FakeClock
from caretaker.settings import Settings
from caretaker.tokens import create_token
from stack.app import api as create_app


@pytest.fixture
def api_clock() -> FakeClock:
    """The clock the test app uses; starts at 2026-11-23 08:00 UTC."""
    from datetime import UTC, datetime

    return FakeClock(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))


@pytest.fixture
def client(settings_env: dict[str, str], api_clock: FakeClock) -> Iterator[TestClient]:
    """A TestClient on a real app and the test's own database."""
    with TestClient(create_app(Settings(), clock=api_clock)) as c:
        yield c


@pytest.fixture
def make_token(database: str) -> Callable[..., dict[str, str]]:
    """make_token("guard", site="x") -> the Authorization header for a new token."""

    def make(role: str, *, site: str | None = None, guard: str | None = None) -> dict[str, str]:
        with psycopg.connect(database) as conn:
            token = create_token(conn, role=role, site_id=site, guard_id=guard)
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def admin(make_token: Callable[..., dict[str, str]]) -> dict[str, str]:
    """Headers of an admin token."""
    return make_token("admin")
