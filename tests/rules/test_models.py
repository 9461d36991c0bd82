"""Rules as typed models: each kind validates and refuses by field, the same in YAML and API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from caretaker.site_config import SiteConfigError, message, parse, where
from rules.model import (
    CountRule,
    OfflineRule,
    RateRule,
    RuleError,
    ThresholdRule,
    parse_rule,
    rule_columns,
    rule_from_row,
)
from stack.app import SECTIONS
from tests.rules.helpers import SITE, make_site

Tokens = Callable[..., dict[str, str]]

GOOD = {
    "threshold": {"id": "t", "metric": "vibration", "op": ">=", "threshold": 7.1, "clear": 6.3,
                  "for": "30s", "clear_for": "1m"},
    "count": {"id": "c", "kind": "count", "metric": "door_fault", "op": ">=", "threshold": 1,
              "count": 3, "clear_count": 2},
    "rate": {"id": "r", "kind": "rate", "metric": "level", "op": "<=", "threshold": -25,
             "window": "10m"},
    "offline": {"id": "o", "kind": "offline", "timeout": "5m", "lwt": False},
}
MODELS = {"threshold": ThresholdRule, "count": CountRule, "rate": RateRule,
          "offline": OfflineRule}


@pytest.mark.parametrize("kind", list(GOOD))
def test_each_kind_validates_to_its_typed_model(kind: str) -> None:
    rule = parse_rule("s", GOOD[kind])
    assert type(rule) is MODELS[kind] and rule.kind == kind and rule.site_id == "s"
    again = rule_from_row({"site_id": "s", "id": rule.id, **rule_columns(rule)})
    assert again == rule  # the table row reads back as the same rule


def test_typed_parameters() -> None:
    t = parse_rule("s", GOOD["threshold"])
    assert isinstance(t, ThresholdRule)
    assert (t.op, t.threshold, t.clear) == (">=", 7.1, 6.3)
    assert (t.for_, t.clear_for) == (timedelta(seconds=30), timedelta(minutes=1))
    assert t.params() == {"op": ">=", "threshold": 7.1, "clear": 6.3, "for": 30.0,
                          "clear_for": 60.0}
    o = parse_rule("s", {"id": "o", "kind": "offline"})
    assert isinstance(o, OfflineRule) and o.timeout == timedelta(minutes=5) and o.lwt
    assert o.metric is None


BAD = [
    ({"id": "a", "metric": "m", "op": "=>", "threshold": 1}, "op: Input should be"),
    ({"id": "a", "metric": "m", "threshold": 1, "for": "-5s"}, "for: '-5s' is not a duration"),
    ({"id": "a", "metric": "m", "threshold": 1, "for": -5}, "for: -5 is not between 0"),
    ({"id": "a", "metric": "m", "threshold": 1, "hold": "5s"},
     "hold: Extra inputs are not permitted"),
    ({"id": "a", "metric": "m"}, "threshold: Field required"),
    ({"id": "a", "kind": "count", "metric": "m", "threshold": 1, "count": 0},
     "count: Input should be greater than or equal to 1"),
    ({"id": "a", "kind": "count", "metric": "m", "threshold": 1, "window": "5m"},
     "window: Extra inputs are not permitted"),
    ({"id": "a", "kind": "rate", "metric": "m", "threshold": 1}, "window: Field required"),
    ({"id": "a", "kind": "rate", "metric": "m", "threshold": 1, "window": "5 parsecs"},
     "window: '5 parsecs' is not a duration"),
    ({"id": "a", "kind": "offline", "metric": "m"}, "metric: Extra inputs are not permitted"),
    ({"id": "a", "kind": "offline", "timeout": 0}, "timeout: must be positive"),
    ({"id": "a", "kind": "offline", "threshold": 3}, "threshold: Extra inputs are not permitted"),
    ({"id": "a", "kind": "pressure", "metric": "m"}, "kind must be one of threshold, count"),
    ({"id": "a", "metric": "m", "threshold": 1, "op": "==", "clear": 2},
     "clear needs an ordering op"),
    ({"id": "a", "metric": "m", "threshold": 1, "device": "d", "device_type": "t"},
     "give device_type or device, not both"),
    ({"id": "a", "metric": "m", "threshold": 1, "severity": "urgent"}, "severity: Input should"),
    ({"id": "a b", "metric": "m", "threshold": 1}, "id: String should match pattern"),
]


@pytest.mark.parametrize(("spec", "expected"), BAD)
def test_each_kind_refuses_naming_the_field(spec: dict[str, Any], expected: str) -> None:
    with pytest.raises(RuleError) as err:
        parse_rule("s", spec)
    assert str(err.value).startswith(f"rule {spec['id']}: ")
    assert expected in str(err.value)


@pytest.mark.parametrize(("spec", "expected"), BAD)
def test_the_site_file_names_the_rule_by_its_path(spec: dict[str, Any], expected: str) -> None:
    doc = {"site": {"id": "s", "name": "S"}, "rules": [GOOD["threshold"], GOOD["count"], spec]}
    with pytest.raises(SiteConfigError) as err:
        parse(doc, SECTIONS)
    assert f"rules[2].{expected}" in str(err.value) or f"rules[2]: {expected}" in str(err.value)


def test_twice_the_same_id_in_a_file_is_refused() -> None:
    doc = {"site": {"id": "s", "name": "S"}, "rules": [GOOD["threshold"], GOOD["threshold"]]}
    with pytest.raises(SiteConfigError, match="rules: an id appears twice: t"):
        parse(doc, SECTIONS)


def test_device_override_is_a_validated_typed_copy() -> None:
    rule = parse_rule("s", GOOD["threshold"])
    mine = rule.for_device({"t": {"threshold": 9, "for": "2m", "op": "<"}})  # op: not overridable
    assert isinstance(mine, ThresholdRule)
    assert (mine.threshold, mine.for_, mine.op) == (9.0, timedelta(minutes=2), ">=")
    assert rule.threshold == 7.1  # the site's rule is unchanged
    assert rule.for_device({"other": {"threshold": 1}}) is rule
    with pytest.raises(RuleError, match="for: 'soon' is not a duration"):
        rule.for_device({"t": {"for": "soon"}})


def _api_problems(body: dict[str, Any]) -> list[str]:
    return [f"{where(tuple(d['loc'][1:]), empty='')}: {message(d)}".removeprefix(": ")
            for d in body["error"]["details"]]


@pytest.mark.parametrize(("spec", "expected"), [b for b in BAD if "kind must" not in b[1]])
def test_api_refuses_the_same_bad_rule_with_the_same_message(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens,
        spec: dict[str, Any], expected: str) -> None:
    make_site(conn)
    r = client.post("/api/v1/rules", json={"site_id": SITE, **spec},
                    headers=make_token("supervisor"))
    assert r.status_code == 422, r.text
    from_api = _api_problems(r.json())
    with pytest.raises(SiteConfigError) as err:
        parse({"site": {"id": SITE, "name": "S"}, "rules": [spec]}, SECTIONS)
    from_file = [line.strip().removeprefix("rules[0]").removeprefix(".").removeprefix(": ")
                 for line in str(err.value).splitlines()[1:]]
    assert from_api == from_file
    assert any(expected in p for p in from_api)


def test_openapi_documents_each_rule_kind_as_its_own_schema(client: TestClient) -> None:
    doc = client.get("/api/v1/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for name, params in (("ThresholdRule", {"op", "threshold", "clear", "for", "clear_for",
                                             "levels"}),
                         ("CountRule", {"op", "threshold", "count", "clear_count"}),
                         ("RateRule", {"op", "threshold", "clear", "window", "for",
                                       "clear_for", "levels"}),
                         ("OfflineRule", {"timeout", "lwt"})):
        props = set(schemas[name]["properties"])
        assert params <= props, name
        assert schemas[name]["additionalProperties"] is False
        assert "params" not in props
    assert "threshold" in schemas["CountRule"]["required"]  # threshold rules: or levels
    level = schemas["Level"]
    assert set(level["required"]) == {"severity", "threshold"}
    assert "window" in schemas["RateRule"]["required"]
    body = doc["paths"]["/api/v1/rules"]["post"]["requestBody"]["content"]["application/json"]
    members = {ref["$ref"].rsplit("/", 1)[-1] for ref in body["schema"]["oneOf"]}
    assert members == {"ThresholdRule", "CountRule", "RateRule", "OfflineRule"}
    for_ = schemas["ThresholdRule"]["properties"]["for"]
    assert {s["type"] for s in for_["anyOf"]} == {"string", "number"}


def test_api_round_trip_of_every_kind(conn: psycopg.Connection, client: TestClient,
                                      make_token: Tokens) -> None:
    make_site(conn)
    sup = make_token("supervisor")
    for kind, spec in GOOD.items():
        r = client.post("/api/v1/rules", json={"site_id": SITE, **spec}, headers=sup)
        assert r.status_code == 201, r.text
        got = r.json()
        assert got["kind"] == kind and got["site_id"] == SITE
        again = client.get(f"/api/v1/rules/{SITE}/{spec['id']}", headers=sup).json()
        assert again == got
    assert client.get(f"/api/v1/rules/{SITE}/t", headers=sup).json()["for"] == "30s"
    r = client.patch(f"/api/v1/rules/{SITE}/o", json={"timeout": "10m"}, headers=sup)
    assert r.status_code == 200 and r.json()["timeout"] == "10m"
    r = client.patch(f"/api/v1/rules/{SITE}/o", json={"threshold": 3}, headers=sup)
    assert r.status_code == 422 and "threshold" in r.json()["error"]["message"]
    r = client.patch(f"/api/v1/rules/{SITE}/t", json={"threshold": None}, headers=sup)
    assert r.status_code == 422
    r = client.post("/api/v1/rules", json={**GOOD["threshold"], "id": "n"}, headers=sup)
    assert r.status_code == 422 and "site_id" in r.json()["error"]["message"]


@pytest.mark.parametrize("query", [
    {"site": "a\x00b"}, {"metric": "a\x00b"}, {"kind": "x"}, {"limit": 10**30},
    {"offset": -1}, {"severity": "\x00"},
])
def test_rule_list_filters_are_validated(client: TestClient, admin: dict[str, str],
                                         query: dict[str, Any]) -> None:
    assert client.get("/api/v1/rules", params=query, headers=admin).status_code == 422


def test_text_with_a_nul_byte_is_refused_not_a_server_error(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens) -> None:
    make_site(conn)
    sup = make_token("supervisor")
    for field in ("name", "description", "metric"):
        body = {"site_id": SITE, **GOOD["threshold"], field: "bad\x00text"}
        r = client.post("/api/v1/rules", json=body, headers=sup)
        assert r.status_code == 422, (field, r.text)
    window = {"site_id": SITE, "starts_at": "2026-11-23T08:00:00+00:00",
              "ends_at": "2026-11-23T09:00:00+00:00", "reason": "a\x00b"}
    assert client.post("/api/v1/maintenance-windows", json=window,
                       headers=sup).status_code == 422
