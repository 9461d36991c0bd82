"""Fixtures of the ticket tests."""

from __future__ import annotations

import pytest

from tests.tickets.front_desk import NotifySpy
from tickets import complaints, work_orders


@pytest.fixture
def notified(monkeypatch: pytest.MonkeyPatch) -> NotifySpy:
    """The notifications work orders and complaints send, recorded (and still sent)."""
    spy = NotifySpy(work_orders.notify)
    monkeypatch.setattr(work_orders, "notify", spy)
    monkeypatch.setattr(complaints, "notify", spy)
    return spy
