"""How each channel sends a message: request bodies (pure) and the one send per channel.

- webhook: the stored JSON payload as it is (event, record, title/lines/link).
- wecom (企业微信 group robot): {"msgtype": "markdown", "markdown": {"content": ...}};
  success is HTTP 200 with errcode 0.
- dingtalk (钉钉 group robot): {"msgtype": "markdown", "markdown": {"title", "text"}}; with
  a signing secret, `timestamp` (ms) and `sign` = urlencode(base64(HMAC-SHA256(secret,
  f"{timestamp}\\n{secret}"))) are added to the URL; success is errcode 0.
- email: SMTP (STARTTLS and login optional), a UTF-8 text mail.
A send answers None, or what went wrong (then the outbox retries): never a secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote_plus

import httpx2 as httpx  # httpx2: the maintained httpx line (starlette needs it too)

from tickets.messages import Message

# httpx logs each request's URL at INFO, and a robot's URL carries its key: keep it quiet.
logging.getLogger("httpx2").setLevel(logging.WARNING)

ROBOT_LIMIT = 4000  # bytes of markdown: WeCom takes at most 4096 (UTF-8)
SEND_TIMEOUT = 2.0  # seconds; a slow receiver must not hold up the other notifications


def clip(text: str, limit: int = ROBOT_LIMIT) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, on a character boundary."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit - 3].decode(errors="ignore") + "…"


def wecom_body(message: Message) -> dict[str, Any]:
    """A WeCom group robot's markdown message."""
    return {"msgtype": "markdown", "markdown": {"content": clip(message.markdown())}}


def dingtalk_body(message: Message) -> dict[str, Any]:
    """A DingTalk group robot's markdown message (title shows in the chat list)."""
    return {"msgtype": "markdown",
            "markdown": {"title": clip(message.title, 200),
                         "text": clip(message.markdown(paragraph=True))}}


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature of a request made at `timestamp_ms` (already URL-encoded)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(),
                      hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def dingtalk_url(url: str, secret: str | None, timestamp_ms: int) -> str:
    """The robot URL to POST to: signed (timestamp and sign appended) when it has a secret."""
    if not secret:
        return url
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"


def email_message(message: Message, *, sender: str, to: Sequence[str]) -> EmailMessage:
    """The mail: the title as its subject, the lines and the link as UTF-8 text."""
    mail = EmailMessage()
    mail["Subject"] = message.title
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail.set_content(message.plain(), charset="utf-8")
    return mail


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret replaced (error messages may quote a URL)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def post_json(http: httpx.Client, url: str, body: Any, *, robot: bool) -> str | None:
    """POST JSON; None on a 2xx answer (and, for a robot, errcode 0), else what went wrong."""
    try:
        response = http.post(url, json=body)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    if not 200 <= response.status_code < 300:
        return f"HTTP {response.status_code}"
    if robot:
        try:
            answer = response.json()
        except ValueError:
            return "the robot's answer is not JSON"
        code = answer.get("errcode") if isinstance(answer, dict) else None
        if code != 0:
            return f"errcode {code}: {str(answer.get('errmsg', ''))[:200]}" \
                if isinstance(answer, dict) else "the robot's answer has no errcode"
    return None


@dataclass(frozen=True)
class Smtp:
    """An SMTP server and the login to use (the password never printed)."""

    host: str
    port: int
    starttls: bool = False
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        return f"Smtp({self.host}:{self.port}, starttls={self.starttls}, user={self.username})"


def send_email(smtp: Smtp, mail: EmailMessage, *, timeout: float = SEND_TIMEOUT) -> str | None:
    """Send one mail; None when the server accepted it, else what went wrong."""
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=timeout) as client:
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            refused = client.send_message(mail)
    except (smtplib.SMTPException, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    if refused:
        return f"refused recipients: {', '.join(sorted(refused))}"[:500]
    return None
