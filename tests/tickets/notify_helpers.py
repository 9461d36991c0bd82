"""Notification tests' set-up: a small site, and real local receivers — an HTTP server that
plays a generic webhook, a WeCom robot or a DingTalk robot (checking the body's shape and the
signature), and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from caretaker.servers import free_port
from caretaker.settings import Settings
from tickets.escalation import parse_ladder, save_ladder
from tickets.notification_policy import parse_spec, save_spec
from tickets.work_orders import open_work_order


@dataclass
class Request:
    path: str
    query: dict[str, str]
    body: Any


class HttpReceiver:
    """A local HTTP server. `kind`: webhook (any JSON, 200), wecom or dingtalk (the robot's
    body shape checked; errcode 0, or 40008/310000 when the shape or signature is wrong).
    `script` answers the first requests: an int is an HTTP status, "errcode" a robot refusal.
    """

    def __init__(self, kind: str = "webhook", *, script: list[int | str] | None = None,
                 secret: str | None = None, port: int = 0) -> None:
        self.kind = kind
        self.script = list(script or [])
        self.secret = secret
        self.received: list[Request] = []  # accepted
        self.attempts = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length).decode("utf-8"))
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                status, answer = outer.answer(Request(parts.path, query, body))
                data = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The robot's or hook's URL, with a key like the real ones carry."""
        if self.kind == "wecom":
            return f"{self.base}/cgi-bin/webhook/send?key=wecom-key-0123456789"
        if self.kind == "dingtalk":
            return f"{self.base}/robot/send?access_token=ding-token-0123456789"
        return f"{self.base}/hook"

    def answer(self, req: Request) -> tuple[int, Any]:
        self.attempts += 1
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, int):
                return step, {"error": "scripted"}
            return 200, {"errcode": 45009, "errmsg": "api freq out of limit"}
        if self.kind == "wecom":
            md = req.body.get("markdown")
            if (req.query.get("key") != "wecom-key-0123456789" or set(req.body) != {
                    "msgtype", "markdown"} or req.body["msgtype"] != "markdown"
                    or not isinstance(md, dict) or set(md) != {"content"}
                    or not isinstance(md["content"], str)
                    or len(md["content"].encode()) > 4096):
                return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        if self.kind == "dingtalk":
            md = req.body.get("markdown")
            if (req.query.get("access_token") != "ding-token-0123456789"
                    or set(req.body) != {"msgtype", "markdown"}
                    or req.body["msgtype"] != "markdown" or not isinstance(md, dict)
                    or set(md) != {"title", "text"}):
                return 200, {"errcode": 40035, "errmsg": "missing parameter"}
            if self.secret is not None and not self._signed(req.query):
                return 200, {"errcode": 310000, "errmsg": "sign not match"}
        self.received.append(req)
        if self.kind == "webhook":
            return 200, None
        return 200, {"errcode": 0, "errmsg": "ok"}

    def _signed(self, query: dict[str, str]) -> bool:
        assert self.secret is not None
        stamp = query.get("timestamp", "")
        digest = hmac.new(self.secret.encode(), f"{stamp}\n{self.secret}".encode(),
                          hashlib.sha256).digest()
        # parse_qs has already URL-decoded the sign
        return stamp.isdigit() and query.get("sign") == base64.b64encode(digest).decode()

    def __enter__(self) -> HttpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Mailbox:
    """What a local SMTP server received."""

    host: str
    port: int
    mails: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    refuse: int = 0  # answer 451 to this many mails first


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.box.refuse > 0:
            self.box.refuse -= 1
            return "451 try again later"
        mail = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.box.mails.append(mail)
        self.box.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


@contextmanager
def smtp_server(*, login: tuple[str, str] | None = None) -> Iterator[Mailbox]:
    """A real SMTP server on a free local port; with `login`, AUTH is required (no TLS)."""
    box = Mailbox("127.0.0.1", free_port())
    kwargs: dict[str, Any] = {}
    if login is not None:
        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                         data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (
                data.login.decode(), data.password.decode()) == login
            if ok:
                box.logins.append((data.login.decode(), data.password.decode()))
            return AuthResult(success=ok, handled=False)

        kwargs = {"authenticator": authenticate, "auth_required": True,
                  "auth_require_tls": False}
    # aiosmtpd warns (in its server thread) about AUTH without TLS and, on each login, about
    # its own deprecated Session.login_data: both are the test server's, not ours.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
        warnings.filterwarnings("ignore", message="Session.login_data is deprecated")
        controller = Controller(_Handler(box), hostname=box.host, port=box.port, **kwargs)
        controller.start()
        try:
            yield box
        finally:
            controller.stop()


SITE = "rv"
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 16:00 in Asia/Shanghai


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_site(conn: psycopg.Connection[Any], receivers: list[dict[str, Any]] | None = None, *,
              language: str = "zh-CN", escalation: dict[str, Any] | None = None,
              site: str = SITE) -> None:
    """A site in Shanghai with a pump in its pump room, and these receivers and ladders."""
    conn.execute("INSERT INTO sites (id, name, timezone) VALUES (%s, '河畔花园', 'Asia/Shanghai')",
                 (site,))
    conn.execute("INSERT INTO zones (site_id, id, name) VALUES (%s, 'pump-room', '水泵房')",
                 (site,))
    conn.execute("INSERT INTO device_types (id, name) VALUES ('water_pump', 'pump')"
                 " ON CONFLICT DO NOTHING")
    conn.execute("INSERT INTO devices (site_id, id, type_id, name, zone_id)"
                 " VALUES (%s, 'pump-1', 'water_pump', '1号生活水泵', 'pump-room')", (site,))
    if receivers is not None:
        save_spec(conn, site, parse_spec({"language": language, "receivers": receivers}),
                  now=T0)
    if escalation is not None:
        save_ladder(conn, site, parse_ladder(escalation), now=T0)
    conn.commit()


def open_ticket(conn: psycopg.Connection[Any], when: datetime = T0, *, severity: str = "critical",
                ref: str = "x:1", site: str = SITE, device: str = "pump-1") -> int:
    """A committed work order on a pump (critical: respond 15 min, resolve 4 h)."""
    wo = open_work_order(conn, site_id=site, device_id=device, severity=severity,
                         title="水泵振动超限", description="振动 11.5 mm/s，轴承异响",
                         source="inspection", source_ref=ref, now=when)
    conn.commit()
    return wo


def open_complaint(conn: psycopg.Connection[Any], when: datetime = T0, *,
                   answer_in: timedelta = timedelta(days=3), grade: str = "一般",
                   number: str = "TS-2026-0001") -> int:
    """A committed complaint about night noise, answer due `answer_in` after `when`."""
    row = conn.execute(
        "INSERT INTO complaints (site_id, number, grade, category, channel, complainant_name,"
        " complainant_unit, complainant_phone, description, opened_at, answer_by, created_by,"
        " updated_at) VALUES (%s, %s, %s, '秩序管理', 'phone', '王小明', '3-1201', '13812345678',"
        " '夜间施工噪音扰民', %s, %s, 'frontdesk', %s) RETURNING id",
        (SITE, number, grade, when, when + answer_in, when)).fetchone()
    conn.commit()
    assert row is not None
    return int(row["id"])


def outbox_rows(conn: psycopg.Connection[Any], where: str = "true") -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(
        "SELECT * FROM notification_outbox WHERE " + where + " ORDER BY id")]  # noqa: S608


def settings_for(**values: Any) -> Settings:
    """Settings for a delivery run (no environment needed)."""
    return Settings(database_url="postgresql://unused", **values)
