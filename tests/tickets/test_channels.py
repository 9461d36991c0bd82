"""Each channel against a real local receiver: the generic webhook, the WeCom and DingTalk
robots (their bodies as the robots expect, errcode answers) and SMTP; retried when they fail,
delivered when they come back, given up after the attempts allowed; secrets in no log."""

from __future__ import annotations

import logging

import psycopg
import pytest

from caretaker.servers import free_port
from tests.tickets.notify_helpers import (
    HttpReceiver,
    at,
    make_site,
    open_ticket,
    outbox_rows,
    settings_for,
    smtp_server,
)
from tickets import channels, outbox
from tickets.messages import Message

SECRET = "SECd0c3b1e6a1f2-signing-secret"
PASSWORD = "smtp-pw-Xy7!q"


def deliver(conn: psycopg.Connection, seconds: float, **settings: object) -> int:
    with conn.transaction():
        return outbox.deliver_due(conn, at(seconds), settings=settings_for(**settings))


def test_dingtalk_signature_follows_the_documented_recipe() -> None:
    # DingTalk: sign = urlencode(base64(HmacSHA256(key=secret, msg=f"{timestamp}\n{secret}")))
    url = channels.dingtalk_url("https://robot.example/send?access_token=t", "SECxyz",
                                1700000000000)
    assert url.startswith("https://robot.example/send?access_token=t&timestamp=1700000000000"
                          "&sign=")
    assert channels.dingtalk_sign("SECxyz", 1700000000000) == (
        "0PUR1j8g85Xg3vlFV%2FUrEcxXfF5HpCAGzcjrNfyJoyg%3D")
    assert channels.dingtalk_url("https://robot.example/send?access_token=t", None, 1) == (
        "https://robot.example/send?access_token=t")


def test_robot_bodies_are_markdown_and_clipped_to_their_limit() -> None:
    message = Message("【新工单】#1 水泵", ("事项：" + "漏" * 3000,), "http://x/1", "查看")
    wecom = channels.wecom_body(message)
    assert wecom["msgtype"] == "markdown" and set(wecom["markdown"]) == {"content"}
    assert len(wecom["markdown"]["content"].encode()) <= 4096
    ding = channels.dingtalk_body(message)
    assert set(ding["markdown"]) == {"title", "text"}
    assert ding["markdown"]["title"] == "【新工单】#1 水泵"
    assert "\n\n事项：" in ding["markdown"]["text"]


def test_generic_webhook_retried_with_backoff_until_delivered(conn: psycopg.Connection) -> None:
    with HttpReceiver("webhook", script=[503, 500]) as hook:
        make_site(conn, [{"name": "ops", "channel": "webhook", "url": hook.url}])
        wo = open_ticket(conn)
        assert deliver(conn, 0) == 0  # 503
        [row] = outbox_rows(conn)
        assert (row["attempts"], row["next_attempt"], row["last_error"]) == (1, at(1), "HTTP 503")
        assert deliver(conn, 0.5) == 0 and hook.attempts == 1  # not due yet
        assert deliver(conn, 1) == 0  # 500; the back-off doubles
        assert outbox_rows(conn)[0]["next_attempt"] == at(3)
        assert deliver(conn, 3) == 1
    [req] = hook.received
    body = req.body
    assert body["event"] == "work_order.opened" and body["site"] == "rv"
    assert body["work_order"]["id"] == wo and body["work_order"]["device_id"] == "pump-1"
    assert body["title"] == f"【新工单】#{wo} 水泵振动超限"
    assert "地点：河畔花园 · 水泵房 · 1号生活水泵" in body["lines"]
    # critical: respond 15 min, resolve 4 h, shown in the site's time (Shanghai, UTC+8)
    assert "时限：响应 2026-11-23 16:15，完成 2026-11-23 20:00" in body["lines"]
    assert body["link"] == f"http://127.0.0.1:8000/api/v1/work-orders/{wo}"
    assert outbox_rows(conn)[0]["delivered_at"] == at(3)


def test_wecom_robot_gets_its_markdown_and_a_nonzero_errcode_is_retried(
        conn: psycopg.Connection) -> None:
    with HttpReceiver("wecom", script=["errcode"]) as robot:
        make_site(conn, [{"name": "eng-group", "channel": "wecom", "url": robot.url}])
        wo = open_ticket(conn)
        assert deliver(conn, 0) == 0
        assert outbox_rows(conn)[0]["last_error"].startswith("errcode 45009")
        assert deliver(conn, 1) == 1
    [req] = robot.received
    content = req.body["markdown"]["content"]
    assert content.startswith(f"### 【新工单】#{wo} 水泵振动超限\n")
    assert "级别：紧急" in content and "地点：河畔花园 · 水泵房 · 1号生活水泵" in content
    assert f"[查看](http://127.0.0.1:8000/api/v1/work-orders/{wo})" in content


def test_dingtalk_robot_signed_requests_and_refusals_retried(conn: psycopg.Connection) -> None:
    with HttpReceiver("dingtalk", secret=SECRET) as robot:
        make_site(conn, [{"name": "ding", "channel": "dingtalk", "url": robot.url,
                          "secret": "SECwrong-secret-0000"}])
        open_ticket(conn)
        assert deliver(conn, 0) == 0  # signed with the wrong secret: errcode 310000
        assert outbox_rows(conn)[0]["last_error"].startswith("errcode 310000")
        # the supervisor fixes the secret; the queued message goes out signed right
        conn.execute("UPDATE notification_settings SET notifications = jsonb_set("
                     "notifications, '{receivers,0,secret}', to_jsonb(%s::text))", (SECRET,))
        conn.commit()
        assert deliver(conn, 1) == 1
    [req] = robot.received
    assert req.body["markdown"]["title"].startswith("【新工单】")
    assert req.query["timestamp"] == str(int(at(1).timestamp() * 1000))


def test_email_over_smtp_with_login_in_utf8_retried_when_refused(
        conn: psycopg.Connection) -> None:
    with smtp_server(login=("caretaker", PASSWORD)) as box:
        box.refuse = 1
        make_site(conn, [{"name": "duty-mail", "channel": "email",
                          "to": ["duty@riverside.example", "eng@riverside.example"],
                          "from": "caretaker@riverside.example"}])
        wo = open_ticket(conn)
        smtp = {"smtp_host": box.host, "smtp_port": box.port, "smtp_username": "caretaker",
                "smtp_password": PASSWORD}
        assert deliver(conn, 0, **smtp) == 0  # 451 from the server
        assert "451" in outbox_rows(conn)[0]["last_error"]
        assert deliver(conn, 1, **smtp) == 1
    [mail] = box.mails
    assert mail["Subject"] == f"【新工单】#{wo} 水泵振动超限"
    assert mail["From"] == "caretaker@riverside.example"
    assert box.envelopes == [("caretaker@riverside.example",
                              ["duty@riverside.example", "eng@riverside.example"])]
    assert mail.get_content_charset() == "utf-8"
    text = mail.get_content()
    assert "地点：河畔花园 · 水泵房 · 1号生活水泵" in text
    assert f"http://127.0.0.1:8000/api/v1/work-orders/{wo}" in text
    assert box.logins == [("caretaker", PASSWORD)] * 2  # one login per attempt


def test_receiver_down_is_retried_and_delivered_when_it_comes_back(
        conn: psycopg.Connection) -> None:
    port = free_port()
    make_site(conn, [{"name": "ops", "channel": "webhook",
                      "url": f"http://127.0.0.1:{port}/hook"}])
    open_ticket(conn)
    assert deliver(conn, 0) == 0
    assert deliver(conn, 1) == 0
    [row] = outbox_rows(conn)
    assert row["attempts"] == 2 and "Connect" in row["last_error"]
    with HttpReceiver("webhook", port=port) as hook:
        assert deliver(conn, 3) == 1
    assert [r.body["event"] for r in hook.received] == ["work_order.opened"]


def test_gives_up_after_the_attempts_allowed_and_records_it(
        conn: psycopg.Connection, caplog: pytest.LogCaptureFixture) -> None:
    make_site(conn, [{"name": "ops", "channel": "webhook",
                      "url": f"http://127.0.0.1:{free_port()}/hook"}])
    open_ticket(conn)
    when = 0.0
    with caplog.at_level(logging.INFO, logger="tickets.outbox"):
        for _ in range(3):
            deliver(conn, when, notify_max_attempts=3)
            when += 1000
    [row] = outbox_rows(conn)
    assert row["attempts"] == 3 and row["failed_at"] == at(2000)
    assert row["delivered_at"] is None and row["last_error"]
    assert "given up after 3 attempts" in caplog.text
    assert deliver(conn, 10**6, notify_max_attempts=3) == 0  # given up: never tried again


def test_a_crash_before_commit_loses_nothing(conn: psycopg.Connection, database: str) -> None:
    with HttpReceiver("webhook") as hook:
        make_site(conn, [{"name": "ops", "channel": "webhook", "url": hook.url}])
        open_ticket(conn)
        # the worker sends, then dies before its transaction commits
        crashed = psycopg.connect(database)
        from psycopg.rows import dict_row

        crashed.row_factory = dict_row  # type: ignore[assignment]
        assert outbox.deliver_due(crashed, at(0), settings=settings_for()) == 1
        crashed.close()  # no commit: rolled back
        assert outbox_rows(conn)[0]["delivered_at"] is None
        assert deliver(conn, 0) == 1  # the restarted worker sends it again
    assert len(hook.received) == 2  # at least once: a receiver may hear it twice, never zero
    assert outbox_rows(conn)[0]["delivered_at"] == at(0)


def test_secrets_never_in_logs_or_errors(conn: psycopg.Connection,
                                         caplog: pytest.LogCaptureFixture) -> None:
    with (HttpReceiver("dingtalk", secret="SECother") as robot,
          HttpReceiver("wecom", script=[500, 500, 500]) as wecom,
          smtp_server(login=("caretaker", "right")) as box):
        make_site(conn, [
            {"name": "ding", "channel": "dingtalk", "url": robot.url, "secret": SECRET},
            {"name": "wecom", "channel": "wecom", "url": wecom.url},
            {"name": "mail", "channel": "email", "to": ["a@b.example"], "host": box.host,
             "port": box.port, "username": "caretaker", "password": PASSWORD},
            {"name": "dead", "channel": "webhook",
             "url": f"http://user:hook-pw-123@127.0.0.1:{free_port()}/h?token=hook-token-456"},
        ])
        open_ticket(conn)
        with caplog.at_level(logging.DEBUG):
            for when in range(0, 1000, 100):
                deliver(conn, when, notify_max_attempts=3)
    rows = outbox_rows(conn)
    assert len(rows) == 4 and all(r["failed_at"] is not None for r in rows)
    errors = " ".join(r["last_error"] for r in rows)
    for secret in (SECRET, PASSWORD, "wecom-key-0123456789", "ding-token-0123456789",
                   "hook-pw-123", "hook-token-456"):
        assert secret not in caplog.text
        assert secret not in errors
    assert "given up" in caplog.text


def test_links_use_the_public_url(conn: psycopg.Connection,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from caretaker.settings import get_settings

    monkeypatch.setenv("CARETAKER_PUBLIC_URL", "https://caretaker.riverside.example/")
    get_settings.cache_clear()
    try:
        make_site(conn, [{"name": "ops", "channel": "webhook", "url": "http://127.0.0.1:9/h"}])
        wo = open_ticket(conn)
    finally:
        get_settings.cache_clear()
    assert outbox_rows(conn)[0]["payload"]["link"] == (
        f"https://caretaker.riverside.example/api/v1/work-orders/{wo}")
