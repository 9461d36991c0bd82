"""Who hears of what (receivers, audiences, the generic webhook of old), what the message
says, the site-file sections, the escalation API (secrets never answered) and the
`caretaker notify test` command."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from caretaker.site_config import SiteConfigError, example_document
from stack.app import load_site
from tests.tickets.notify_helpers import (
    T0,
    HttpReceiver,
    at,
    make_site,
    open_complaint,
    open_ticket,
    outbox_rows,
    smtp_server,
)
from tickets.messages import Place, compose
from tickets.notification_policy import (
    MASK,
    NotificationsError,
    mask_url,
    parse_spec,
    targets_for,
    unmask,
)
from tickets.notify import notify

SECRET = "SECd0c3b1e6a1f2-signing-secret"
PASSWORD = "smtp-pw-Xy7!q"
WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4"
DING = "https://oapi.dingtalk.com/robot/send?access_token=e9a8118c8a3dc685fab41df25b9dc865"
RECEIVERS: list[dict[str, Any]] = [
    {"name": "ops", "channel": "webhook", "url": "http://127.0.0.1:9/ops"},
    {"name": "eng", "channel": "wecom", "url": WECOM, "subjects": ["work_order"],
     "audiences": ["engineer_on_duty", "all"]},
    {"name": "ding", "channel": "dingtalk", "url": DING, "secret": SECRET,
     "events": ["escalated", "overdue"], "audiences": ["engineering_manager"]},
    {"name": "quality", "channel": "email", "to": ["quality@company.example"],
     "subjects": ["complaint"], "audiences": ["quality"], "password": PASSWORD},
    {"name": "off", "channel": "webhook", "url": "http://127.0.0.1:9/off", "enabled": False},
]


def names(subject: str, event: str, audience: tuple[str, ...] = (),
          legacy: str | None = None) -> list[str | None]:
    spec = parse_spec({"receivers": RECEIVERS})
    return [t.receiver for t in targets_for(spec, subject=subject, event=event,
                                            audience=audience, legacy_url=legacy)]


def test_receivers_hear_what_they_take_and_what_is_addressed_to_them() -> None:
    assert names("work_order", "opened") == ["ops", "eng"]
    assert names("complaint", "opened") == ["ops"]
    assert names("complaint", "opened", ("quality",)) == ["ops", "quality"]  # 严重 at once
    assert names("work_order", "escalated", ("engineering_manager",)) == ["ops", "eng", "ding"]
    assert names("work_order", "opened", ("engineering_manager",)) == ["ops", "eng"]  # events
    assert names("work_order", "escalated", ("ding",)) == ["ops", "eng", "ding"]  # by name
    assert names("report", "weekly") == ["ops"]
    # the policy's (or the global) generic webhook hears work-order events, once per address
    assert names("work_order", "closed", legacy="http://127.0.0.1:9/ops") == ["ops", "eng"]
    assert names("work_order", "closed", legacy="http://h/x") == ["ops", "eng", None]


@pytest.mark.parametrize(("bad", "field"), [
    ({"receivers": [{"name": "x", "channel": "sms", "url": "http://h"}]}, "receivers[0]"),
    ({"receivers": [{"name": "x", "channel": "wecom", "url": "ftp://h"}]}, "url"),
    ({"receivers": [{"name": "x", "channel": "email", "to": []}]}, "to"),
    ({"receivers": [{"name": "x", "channel": "email", "to": ["not-an-address"]}]}, "to[0]"),
    ({"receivers": [{"name": "x", "channel": "webhook", "url": "http://h", "events": ["x"]}]},
     "events[0]"),
    ({"receivers": [{"name": "a", "channel": "webhook", "url": "http://h"},
                    {"name": "a", "channel": "webhook", "url": "http://i"}]}, "appears twice"),
    ({"language": "fr"}, "language"),
])
def test_bad_receivers_are_refused_naming_the_field(bad: dict[str, Any], field: str) -> None:
    with pytest.raises(NotificationsError, match=r"notifications: .*" + field.replace(
            "[", r"\[").replace("]", r"\]")):
        parse_spec(bad)


def test_secrets_are_masked_for_show_and_kept_when_sent_back_masked() -> None:
    spec = parse_spec({"receivers": RECEIVERS})
    shown = spec.public()
    text = str(shown)
    for secret in (SECRET, PASSWORD, "693a91f6-7xxx-4bc4", "e9a8118c8a3dc685fab41df25b9dc865"):
        assert secret not in text
    assert shown["receivers"][1]["url"] == mask_url(WECOM) == (
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=********")
    assert shown["receivers"][2]["secret"] == MASK
    assert SECRET in str(spec.stored()) and repr(spec).count(SECRET) == 0
    back = unmask(parse_spec(shown), spec)

    def whole(s: Any) -> Any:
        return s.model_dump(mode="json", context={"reveal": True})

    assert whole(back) == whole(spec)
    changed = dict(shown, receivers=[dict(shown["receivers"][2], secret="SECnew")])
    assert unmask(parse_spec(changed), spec).receivers[0].secret.get_secret_value() == "SECnew"


def test_the_message_says_what_where_which_deadline_and_links_in_english() -> None:
    record = {"id": 7, "title": "Pump vibration high", "description": "vibration 11.5 mm/s",
              "severity": "critical", "category": "设备", "state": "open",
              "respond_by": at(900), "resolve_by": at(4 * 3600), "reporter_name": "Zhou Li",
              "reporter_phone": "13812345678", "reporter_unit": "3-1201"}
    message = compose(subject="work_order", event="escalated", record=record,
                      place=Place("Riverside", "Asia/Shanghai", "Pump room", "Pump 1"),
                      language="en", base="https://ct.example",
                      extra={"level": 2, "who": ["engineering_manager"],
                             "deadline": "respond", "due_at": at(900).isoformat()})
    assert message.title == "Escalated (level 2): work order #7 Pump vibration high"
    assert message.lines == (
        "What: vibration 11.5 mm/s", "Severity: critical", "Category: 设备",
        "Where: Riverside · Pump room · Pump 1",
        "Deadline: respond by 2026-11-23 16:15, resolve by 2026-11-23 20:00",
        "Overdue: respond by 2026-11-23 16:15 passed",
        "Escalation: level 2 → engineering_manager",
        "Reporter: Z****** 3-1201 138****5678", "State: open")
    assert message.link == "https://ct.example/api/v1/work-orders/7"
    assert "Zhou Li" not in message.plain() and "13812345678" not in message.plain()


def test_a_report_or_handover_brings_its_own_title_and_link() -> None:
    message = compose(subject="report", event="weekly", record={"id": 3},
                      place=Place("河畔花园"), language="zh-CN", base="http://b",
                      extra={"title": "2026 第48周巡检周报", "path": "/api/v1/reports/3",
                             "lines": ["零修急修及时率 99.2 %"]})
    assert message.title == "【周报】2026 第48周巡检周报"
    assert message.lines == ("地点：河畔花园", "零修急修及时率 99.2 %")
    assert message.link == "http://b/api/v1/reports/3"


def test_notify_queues_one_row_per_receiver_in_the_callers_transaction(
        conn: psycopg.Connection) -> None:
    make_site(conn, RECEIVERS)
    cid = open_complaint(conn, grade="严重")
    record = dict(conn.execute("SELECT * FROM complaints WHERE id = %s", (cid,)).fetchone())
    conn.commit()
    with conn.transaction():
        assert notify(conn, site_id="rv", subject="complaint", event="opened", record=record,
                      now=at(1), audience=("quality",)) == 2
    try:
        with conn.transaction():
            notify(conn, site_id="rv", subject="complaint", event="closed", record=record,
                   now=at(2))
            raise RuntimeError("the cause fails")
    except RuntimeError:
        pass
    rows = outbox_rows(conn)
    assert [(r["receiver"], r["channel"], r["event"]) for r in rows] == [
        ("ops", "webhook", "opened"), ("quality", "email", "opened")]
    assert rows[1]["target"] == "quality@company.example"
    assert rows[1]["payload"]["title"] == "【新投诉】TS-2026-0001（严重）"
    assert rows[1]["payload"]["complaint"]["complainant_name"] == "王**"
    assert SECRET not in str(rows) and PASSWORD not in str(rows)


def test_the_global_webhook_hears_work_orders_as_before(
        conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    from caretaker.settings import get_settings

    monkeypatch.setenv("CARETAKER_WEBHOOK_URL", "http://127.0.0.1:9/global")
    get_settings.cache_clear()
    try:
        make_site(conn)
        open_ticket(conn)
        open_complaint(conn)
        record = dict(conn.execute("SELECT * FROM complaints").fetchone())
        with conn.transaction():
            notify(conn, site_id="rv", subject="complaint", event="opened", record=record,
                   now=at(1))
    finally:
        get_settings.cache_clear()
    [row] = outbox_rows(conn)
    assert (row["receiver"], row["target"], row["payload"]["event"]) == (
        None, "http://127.0.0.1:9/global", "work_order.opened")


def test_site_file_sections_load_and_a_bad_one_is_refused(conn: psycopg.Connection) -> None:
    doc = example_document()
    load_site(conn, doc, now=T0)
    stored = conn.execute("SELECT * FROM notification_settings").fetchone()
    assert [r["name"] for r in stored["notifications"]["receivers"]][:2] == [
        "duty-room", "engineer-on-duty"]
    assert stored["escalation"]["complaints"][2] == {"level": 3, "after": "1d",
                                                     "who": ["quality"]}
    load_site(conn, doc, now=at(60))  # loading again changes nothing
    again = conn.execute("SELECT updated_at FROM notification_settings").fetchone()
    assert again["updated_at"] == T0
    bad = {**doc, "escalation": {"work_orders": [{"level": 1, "who": ["x"], "after": "soon"}]}}
    with pytest.raises(SiteConfigError, match=r"escalation\.work_orders\[0\]\.after"):
        load_site(conn, bad, now=T0)


# ---- the API -------------------------------------------------------------------------

Headers = Callable[..., dict[str, str]]


@pytest.fixture
def site_with_secrets(database: str) -> None:
    with psycopg.connect(database, row_factory=psycopg.rows.dict_row) as conn:
        make_site(conn, RECEIVERS)
        make_site(conn, site="other")


@pytest.mark.usefixtures("site_with_secrets")
def test_get_shows_the_ladder_receivers_and_reach_never_a_secret(
        client: TestClient, make_token: Headers) -> None:
    r = client.get("/api/v1/sites/rv/escalation", headers=make_token("viewer"))
    assert r.status_code == 200, r.text
    body = r.json()
    for secret in (SECRET, PASSWORD, "693a91f6-7xxx-4bc4", "e9a8118c8a3dc685fab41df25b9dc865"):
        assert secret not in r.text
    assert body["escalation"]["work_orders"][1] == {
        "level": 2, "after": "30m", "who": ["engineering_manager"], "channel": None}
    assert body["notifications"]["receivers"][2]["secret"] == MASK
    assert [lv["receivers"] for lv in body["reach"]["work_orders"]] == [["eng"], ["ding"], []]
    assert client.get("/api/v1/sites/rv/escalation",
                      headers=make_token("guard")).status_code == 403
    assert client.get("/api/v1/sites/rv/escalation",
                      headers=make_token("viewer", site="other")).status_code == 404
    assert client.get("/api/v1/sites/nope/escalation",
                      headers=make_token("admin")).status_code == 404


@pytest.mark.usefixtures("site_with_secrets")
def test_put_replaces_by_the_same_models_keeping_masked_secrets(
        client: TestClient, make_token: Headers, database: str) -> None:
    supervisor = make_token("supervisor", site="rv")
    shown = client.get("/api/v1/sites/rv/escalation", headers=supervisor).json()
    ladder = {"work_orders": [{"level": 1, "after": "10m", "who": ["ding"],
                               "channel": "dingtalk"}], "complaints": []}
    r = client.put("/api/v1/sites/rv/escalation", headers=supervisor,
                   json={"escalation": ladder, "notifications": shown["notifications"]})
    assert r.status_code == 200, r.text
    assert r.json()["reach"]["work_orders"] == [
        {"level": 1, "after": "10m", "who": ["ding"], "channel": "dingtalk",
         "receivers": ["ding"]}]
    assert SECRET not in r.text
    with psycopg.connect(database) as conn:
        stored = conn.execute("SELECT notifications::text FROM notification_settings"
                              ).fetchone()[0]
    assert SECRET in stored and PASSWORD in stored and "693a91f6-7xxx-4bc4" in stored
    refused = [
        ({"escalation": {"work_orders": [{"level": 1, "who": []}]}}, supervisor, 422),
        ({"notifications": {"receivers": [{"name": "x", "channel": "fax"}]}}, supervisor, 422),
        ({"ladder": []}, supervisor, 422),
        ({"escalation": ladder}, make_token("engineer", site="rv"), 403),
        ({"escalation": ladder}, make_token("supervisor", site="other"), 403),
    ]
    for body, headers, status in refused:
        assert client.put("/api/v1/sites/rv/escalation", headers=headers,
                          json=body).status_code == status, body
    assert client.put("/api/v1/sites/nope/escalation", headers=make_token("admin"),
                      json={"escalation": ladder}).status_code == 404


def test_notify_test_command_tries_every_receiver(
        settings_env: dict[str, str], database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with HttpReceiver("wecom") as robot, smtp_server() as box:
        with psycopg.connect(database, row_factory=psycopg.rows.dict_row) as conn:
            make_site(conn, [
                {"name": "robot", "channel": "wecom", "url": robot.url},
                {"name": "mail", "channel": "email", "to": ["duty@riverside.example"]},
                {"name": "down", "channel": "webhook", "url": "http://127.0.0.1:9/x?token=abcd5678"},
            ])
        monkeypatch.setenv("CARETAKER_SMTP_HOST", box.host)
        monkeypatch.setenv("CARETAKER_SMTP_PORT", str(box.port))
        out = subprocess.run([sys.executable, "-m", "stack.cli", "notify", "test", "--site",
                              "rv"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stderr  # one receiver is down
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["robot", "wecom", "delivered"]
    assert lines[1].split() == ["mail", "email", "delivered"]
    assert lines[2].startswith("down") and "FAILED" in lines[2] and "abcd5678" not in out.stdout
    assert robot.received[0].body["markdown"]["content"].startswith("### 【测试】")
    assert box.mails[0]["Subject"] == "【测试】Caretaker 通知测试"
