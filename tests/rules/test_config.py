"""The rules sections of the site configuration, loaded from the example site."""

from __future__ import annotations

import psycopg
import pytest

from caretaker.site_config import SiteConfigError, example_document
from stack.app import load_site
from tests.rules.helpers import T0, rows
from tickets.policy import load_policy


def test_example_site_rules_load_and_reload_unchanged(conn: psycopg.Connection) -> None:
    doc = example_document()
    load_site(conn, doc, now=T0)
    loaded = rows(conn, "SELECT id, kind, metric, enabled, updated_at FROM rules ORDER BY id")
    ids = {r["id"] for r in loaded}
    assert {"pump-vibration", "elevator-door-fault", "device-offline", "mains-lost",
            "tank-level-falling", "over-voltage", "power-factor-low"} <= ids
    metrics = {r["metric"] for r in rows(
        conn, "SELECT DISTINCT metric FROM rules WHERE enabled AND metric IS NOT NULL")}
    assert {"vibration", "bearing_temp", "outlet_pressure", "level", "supply_temp",
            "door_fault", "power_factor", "voltage", "forced", "water"} == metrics
    policy = load_policy(conn, "riverside")
    assert policy.deadlines["critical"] == (900.0, 14400.0)
    load_site(conn, doc, now=T0.replace(hour=9))
    again = rows(conn, "SELECT id, kind, metric, enabled, updated_at FROM rules ORDER BY id")
    assert again == loaded


def test_bad_rule_is_reported_with_its_id(conn: psycopg.Connection) -> None:
    doc = example_document()
    load_site(conn, doc, now=T0)
    bad = {**doc, "rules": [*doc["rules"], {"id": "x", "metric": "vibration"}]}
    where = rf"rules\[{len(doc['rules'])}\]: threshold: Field required"
    with pytest.raises(SiteConfigError, match=where):
        load_site(conn, bad, now=T0)
    with pytest.raises(SiteConfigError, match="unknown device_type"):
        load_site(conn, {**doc, "rules": [{"id": "y", "metric": "m", "threshold": 1,
                                          "device_type": "nope"}]}, now=T0)


def test_work_order_policy_is_checked() -> None:
    from tickets.policy import PolicyError as RuleError
    from tickets.policy import parse_policy

    policy = parse_policy({"open_at": "major", "deadlines": {"minor": {"resolve": "5d"}},
                           "repeat_within": "2d", "webhook": "http://127.0.0.1:1/x"})
    assert policy.deadlines["minor"] == (4 * 3600.0, 5 * 86400.0)
    assert policy.repeat_within == 2 * 86400.0 and policy.webhook_url == "http://127.0.0.1:1/x"
    for bad in ({"open_at": "urgent"}, {"deadlines": {"major": {"respond": "soon"}}},
                {"repeat_action": "merge"}, {"webhook": {"url": "x", "events": ["sent"]}},
                {"escalate": True}):
        with pytest.raises(RuleError):
            parse_policy(bad)
