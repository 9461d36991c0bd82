"""Residents' names and phones: whole for the roles that handle tickets, masked for the others."""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient

from caretaker.privacy import HANDLERS, mask_name, mask_phone
from tests.tickets.front_desk import (
    API,
    MASKED_PHONE,
    PHONE,
    SITE,
    Tokens,
    complaint,
    make_sites,
    ticket,
)

WHOLE_TICKET = {"name": "陈女士", "unit": "3-1201", "phone": PHONE}
MASKED_TICKET = {"name": "陈**", "unit": "3-1201", "phone": MASKED_PHONE}
WHOLE_COMPLAINANT = {"name": "王先生", "unit": "2-1503", "phone": PHONE}
MASKED_COMPLAINANT = {"name": "王**", "unit": "2-1503", "phone": MASKED_PHONE}


def test_mask_shapes() -> None:
    assert mask_phone(PHONE) == MASKED_PHONE
    assert mask_name("陈女士") == "陈**" and mask_name("Li") == "L*"
    assert HANDLERS == {"admin", "supervisor", "engineer", "frontdesk"}


@pytest.mark.parametrize(("role", "whole"), [
    ("admin", True), ("supervisor", True), ("engineer", True), ("frontdesk", True),
    ("viewer", False), ("guard", False)])
def test_every_read_masks_for_roles_outside_the_handlers(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens, role: str,
        whole: bool) -> None:
    make_sites(conn)
    desk = make_token("frontdesk")
    wo = client.post(f"{API}/work-orders", json=ticket(), headers=desk).json()
    c = client.post(f"{API}/complaints", json=complaint(), headers=desk).json()
    reader = make_token(role, guard="g-1" if role == "guard" else None)
    expected_wo = WHOLE_TICKET if whole else MASKED_TICKET
    expected_c = WHOLE_COMPLAINANT if whole else MASKED_COMPLAINANT

    listed = client.get(f"{API}/work-orders", params={"site": SITE}, headers=reader).json()
    assert [w["reporter"] for w in listed["items"]] == [expected_wo]
    assert client.get(f"{API}/work-orders/{wo['id']}",
                      headers=reader).json()["reporter"] == expected_wo
    listed = client.get(f"{API}/complaints", params={"site": SITE}, headers=reader).json()
    assert [x["complainant"] for x in listed["items"]] == [expected_c]
    assert client.get(f"{API}/complaints/{c['id']}",
                      headers=reader).json()["complainant"] == expected_c
    for answer in (client.get(f"{API}/work-orders", headers=reader),
                   client.get(f"{API}/complaints", headers=reader)):
        assert (PHONE in answer.text) is whole and ("陈女士" in answer.text
                                                    or "王先生" in answer.text) is whole


def test_a_ticket_without_a_reporter_has_none(conn: psycopg.Connection, client: TestClient,
                                              make_token: Tokens) -> None:
    make_sites(conn)
    eng = make_token("engineer")
    r = client.post(f"{API}/work-orders", json=ticket(reporter={}, category="整改"), headers=eng)
    assert r.status_code == 201 and r.json()["reporter"] is None
    r = client.post(f"{API}/work-orders", json=ticket(reporter={"unit": "5-802"}), headers=eng)
    assert r.json()["reporter"] == {"name": None, "unit": "5-802", "phone": None}
