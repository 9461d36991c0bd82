"""A site's receivers of notifications (site file `notifications:`) and who hears of what.

A receiver is one channel to people: the generic JSON `webhook`, a WeCom (企业微信) or
DingTalk (钉钉) group robot, or `email`. It takes some subjects and events, and belongs to
audiences: `all` (the default) hears everything it takes; a receiver without `all` hears only
what is addressed to one of its audiences or to its name (an escalation level, the quality
department for a 严重 complaint). Secrets (a robot URL's key, a signing secret, an SMTP
password) are never shown by the API: `public()` masks them and `unmask()` takes the stored
value back when a client returns the mask unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    StringConstraints,
    ValidationError,
    field_serializer,
    field_validator,
)

from caretaker.errors import Invalid
from caretaker.ids import Ident
from caretaker.site_config import problems

Channel = Literal["webhook", "wecom", "dingtalk", "email"]
CHANNELS: tuple[Channel, ...] = ("webhook", "wecom", "dingtalk", "email")
Subject = Literal["work_order", "complaint", "report", "handover", "verification"]
SUBJECTS: tuple[Subject, ...] = ("work_order", "complaint", "report", "handover",
                                 "verification")
# Tickets and complaints: opened .. closed; a report: weekly; a handover sheet: unsigned.
Event = Literal["opened", "escalated", "overdue", "answered", "closed", "weekly", "unsigned",
                "test"]
EVENTS: tuple[Event, ...] = ("opened", "escalated", "overdue", "answered", "closed", "weekly",
                             "unsigned", "test")
Language = Literal["zh-CN", "en"]
EVERYONE = "all"  # the audience that hears every notification a receiver takes
MASK = "********"

Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s\x00]+$", max_length=2000)]
Address = Annotated[str, StringConstraints(pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+$",
                                           max_length=254)]
Login = Annotated[str, StringConstraints(pattern=r"^[^\x00]+$", max_length=200)]
Host = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,253}$")]


class NotificationsError(Invalid):
    """A notifications section that cannot be used; the message names the field."""


class _Receiver(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: Ident
    subjects: list[Subject] = Field(default_factory=lambda: list(SUBJECTS))
    events: list[Event] = Field(default_factory=lambda: list(EVENTS))
    audiences: list[Ident] = Field(default_factory=lambda: [EVERYONE], min_length=1,
                                   description="who it speaks for: engineer_on_duty, quality, "
                                   "...; `all` hears every notification it takes")
    enabled: bool = True

    def target(self) -> str:
        """Where its messages go (a URL, or the e-mail addresses)."""
        raise NotImplementedError

    def takes(self, subject: str, event: str, audience: Sequence[str]) -> bool:
        """Whether a notification about `subject`/`event` addressed to `audience` reaches it."""
        if not self.enabled or subject not in self.subjects or event not in self.events:
            return False
        return EVERYONE in self.audiences or any(
            a == self.name or a in self.audiences for a in audience)


class _Robot(_Receiver):
    url: Url

    def target(self) -> str:
        return self.url

    @field_serializer("url", when_used="json")
    def _mask_url(self, url: str, info: SerializationInfo) -> str:
        return url if _reveal(info) else mask_url(url)


class WebhookReceiver(_Robot):
    """The generic JSON webhook: the event, the record and the message, POSTed as JSON."""

    channel: Literal["webhook"]


class WecomReceiver(_Robot):
    """A WeCom (企业微信) group robot: its webhook URL (…/cgi-bin/webhook/send?key=…)."""

    channel: Literal["wecom"]


class DingtalkReceiver(_Robot):
    """A DingTalk (钉钉) group robot: its webhook URL, and its signing secret (加签) if set."""

    channel: Literal["dingtalk"]
    secret: SecretStr | None = None

    @field_serializer("secret", when_used="json")
    def _mask_secret(self, secret: SecretStr | None, info: SerializationInfo) -> str | None:
        return _secret_out(secret, info)


class EmailReceiver(_Receiver):
    """E-mail over SMTP; server, sender and login default to the CARETAKER_SMTP_* settings."""

    channel: Literal["email"]
    to: list[Address] = Field(min_length=1, max_length=50)
    sender: Address | None = Field(default=None, alias="from")
    host: Host | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    starttls: bool | None = None
    username: Login | None = None
    password: SecretStr | None = None

    def target(self) -> str:
        return ", ".join(self.to)

    @field_serializer("password", when_used="json")
    def _mask_password(self, password: SecretStr | None, info: SerializationInfo
                       ) -> str | None:
        return _secret_out(password, info)


Receiver = Annotated[WebhookReceiver | WecomReceiver | DingtalkReceiver | EmailReceiver,
                     Field(discriminator="channel")]


class NotificationsSpec(BaseModel):
    """The written section (site file `notifications:`): the language and the receivers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    language: Language = Field(default="zh-CN", description="the messages' language")
    receivers: list[Receiver] = Field(default_factory=list, max_length=100)

    @field_validator("receivers")
    @classmethod
    def _unique(cls, receivers: list[Any]) -> list[Any]:
        names = [r.name for r in receivers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"a receiver name appears twice: {', '.join(twice)}")
        return receivers

    def receiver(self, name: str | None) -> Any:
        """The receiver of this name, or None."""
        return next((r for r in self.receivers if r.name == name), None)

    def stored(self) -> dict[str, Any]:
        """The JSON kept in the database: secrets included (the API never shows this)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True,
                               context={"reveal": True})

    def public(self) -> dict[str, Any]:
        """The JSON the API shows: every secret masked."""
        return self.model_dump(mode="json", by_alias=True)


def _reveal(info: SerializationInfo) -> bool:
    return bool(isinstance(info.context, dict) and info.context.get("reveal"))


def _secret_out(secret: SecretStr | None, info: SerializationInfo) -> str | None:
    if secret is None:
        return None
    return secret.get_secret_value() if _reveal(info) else MASK


def mask_url(url: str) -> str:
    """A URL with its query values (a robot's key or access token) and password hidden."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = urlencode([(k, MASK) for k, _ in parse_qsl(parts.query, keep_blank_values=True)],
                      safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def unmask(new: NotificationsSpec, stored: NotificationsSpec) -> NotificationsSpec:
    """`new` with each masked value a client sent back replaced by the stored one."""
    receivers = []
    for r in new.receivers:
        old = stored.receiver(r.name)
        if old is None or old.channel != r.channel:
            receivers.append(r)
            continue
        update: dict[str, Any] = {}
        if isinstance(r, _Robot) and isinstance(old, _Robot) and r.url == mask_url(old.url):
            update["url"] = old.url
        for key in ("secret", "password"):
            value = getattr(r, key, None)
            if isinstance(value, SecretStr) and value.get_secret_value() == MASK:
                update[key] = getattr(old, key)
        receivers.append(r.model_copy(update=update) if update else r)
    return new.model_copy(update={"receivers": receivers})


def secrets_of(receiver: Any) -> list[str]:
    """The values of a receiver that must never appear in a log line or an error."""
    url = getattr(receiver, "url", None)
    out = url_secrets(url) if url else []
    for key in ("secret", "password"):
        value = getattr(receiver, key, None)
        if isinstance(value, SecretStr):
            out.append(value.get_secret_value())
    return out


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that are credentials: its query values (a robot's key) and password."""
    parts = urlsplit(url)
    out = [v for _, v in parse_qsl(parts.query) if len(v) >= 4]
    if parts.password:
        out.append(parts.password)
    return out


@dataclass(frozen=True)
class Target:
    """One receiver a notification is queued for."""

    receiver: str | None  # None: the work-order policy's or the global webhook
    channel: Channel
    target: str


def targets_for(spec: NotificationsSpec, *, subject: str, event: str, audience: Sequence[str],
                legacy_url: str | None = None) -> list[Target]:
    """Who hears of an event: the receivers that take it, and the generic webhook of old.

    `legacy_url` is the work-order policy's (or the global) webhook, which hears work-order
    events as it always has. One target per channel and address.
    """
    out: list[Target] = []
    seen: set[tuple[str, str]] = set()
    candidates = [Target(r.name, r.channel, r.target()) for r in spec.receivers
                  if r.takes(subject, event, audience)]
    if legacy_url is not None:
        candidates.append(Target(None, "webhook", legacy_url))
    for t in candidates:
        if (t.channel, t.target) not in seen:
            seen.add((t.channel, t.target))
            out.append(t)
    return out


def reach(spec: NotificationsSpec, who: Sequence[str], channel: str | None) -> list[str]:
    """The receivers an escalation level addressed to `who` (by `channel`, if given) reaches."""
    return [r.name for r in spec.receivers
            if r.enabled and (channel is None or r.channel == channel)
            and (r.name in who or any(a in who for a in r.audiences))]


def parse_spec(value: Any) -> NotificationsSpec:
    """A notifications section from its YAML/JSON shape; NotificationsError naming the field."""
    try:
        return NotificationsSpec.model_validate(value or {})
    except ValidationError as exc:
        raise NotificationsError("notifications: " + "; ".join(problems(exc, empty="")),
                                 ) from None


def load_spec(conn: psycopg.Connection[Any], site_id: str) -> NotificationsSpec:
    """The site's receivers (none when it has no `notifications:`)."""
    row = conn.execute("SELECT notifications FROM notification_settings WHERE site_id = %s",
                       (site_id,)).fetchone()
    return parse_spec(row["notifications"] if row else None)


def save_spec(conn: psycopg.Connection[Any], site_id: str, spec: NotificationsSpec, *,
              now: datetime) -> None:
    """Store the site's `notifications:` section (replacing the previous one)."""
    save_section(conn, site_id, "notifications", spec.stored(), now=now)


def save_section(conn: psycopg.Connection[Any], site_id: str, column: str,
                 value: dict[str, Any], *, now: datetime) -> None:
    """Upsert one section of notification_settings; unchanged content leaves updated_at."""
    if column not in ("notifications", "escalation"):
        raise ValueError(f"no section {column!r}")
    col = sql.Identifier(column)
    conn.execute(sql.SQL(
        "INSERT INTO notification_settings (site_id, {col}, updated_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (site_id) DO UPDATE SET {col} = EXCLUDED.{col},"
        " updated_at = EXCLUDED.updated_at"
        " WHERE notification_settings.{col} IS DISTINCT FROM EXCLUDED.{col}").format(col=col),
        (site_id, Jsonb(value), now))
