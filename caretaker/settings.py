"""The one place configuration is read: environment variables prefixed CARETAKER_."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote, unquote, urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from caretaker.durations import Duration

CHECKOUT = Path(__file__).resolve().parent.parent


class MqttTarget(NamedTuple):
    """Where and how an MQTT client connects: the broker, its login, and TLS."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None

    def login(self, username: str, password: str | None) -> MqttTarget:
        """The same broker with another login."""
        return self._replace(username=username, password=password)

    def url(self) -> str:
        """The URL with the password redacted (for logs and `caretaker status`)."""
        user = f"{quote(self.username, safe='')}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"

    def __repr__(self) -> str:  # never print the password
        return f"MqttTarget({self.url()})"

    def __str__(self) -> str:
        return self.url()


def parse_mqtt_url(url: str, ca_file: str | None = None) -> MqttTarget:
    """`mqtt://[user:pass@]host[:port]` or `mqtts://...` (TLS, default port 8883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"CARETAKER_MQTT_URL must start with mqtt:// or mqtts://, not "
                         f"{parts.scheme or url!r}://")
    tls = parts.scheme == "mqtts"
    return MqttTarget(parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883),
                      unquote(parts.username) if parts.username else None,
                      unquote(parts.password) if parts.password is not None else None,
                      tls, ca_file)


class Settings(BaseSettings):
    """Caretaker's settings; every field can be set as CARETAKER_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="CARETAKER_", extra="ignore")

    state_dir: Path = CHECKOUT / ".caretaker"
    # External servers; when unset, the embedded ones under state_dir are used.
    database_url: str | None = None
    # mqtt://user:pass@host:port, or mqtts://... for TLS (CA bundle: mqtt_ca_file).
    mqtt_url: str | None = None
    mqtt_ca_file: str | None = None

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    mqtt_port: int = 1883
    # Seconds between the embedded broker's saves of its store: what a broker crash (kill -9)
    # can lose at most, traded against a latency spike at each save (README, Security).
    mqtt_autosave_seconds: int = Field(default=5, ge=1, le=3600)
    db_port: int = 5433

    retention_days: int = Field(default=365, ge=1)
    # Rollups (rules/rollups.py): raw telemetry points are kept this many days, 1-minute
    # rollups and 1-hour rollups these many (long ranges read rollups, never raw points).
    raw_retention_days: int = Field(default=90, ge=1)
    rollup_minute_retention_days: int = Field(default=400, ge=1)
    rollup_hour_retention_days: int = Field(default=3660, ge=1)
    db_pool_size: int = 8

    ingest_batch_size: int = Field(default=5000, ge=1)
    ingest_batch_ms: int = Field(default=30, ge=1)
    ingest_client_id: str = "caretaker-ingest"
    # MQTT shared-subscription group ($share/<group>/...) the ingest workers join.
    ingest_share_group: str = "caretaker"
    # Messages held in memory before the ingest stops reading from the socket.
    ingest_max_pending: int = Field(default=50000, ge=100)
    # Payload bytes held in memory before the ingest stops reading from the socket (sized for
    # a 2 GiB machine; one more message of up to max_packet_size may arrive past it).
    ingest_max_pending_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    # Ingest processes: one takes a plain persistent subscription (kept by Mosquitto 2.0
    # across restarts); several share `$share/<ingest_share_group>/...`.
    ingest_workers: int = Field(default=1, ge=1)

    rules_tick_ms: int = Field(default=500, ge=10)
    # Patrol: clock tick (gaps appear within tick + settle of a window closing), how long a
    # closed window waits for in-flight scans, repeat-scan window, planning horizon/catch-up.
    patrol_tick_ms: int = Field(default=500, ge=10, le=1000)
    patrol_settle_seconds: float = Field(default=2.0, ge=0, le=3)
    patrol_repeat_seconds: int = Field(default=300, ge=0)
    patrol_horizon_hours: int = Field(default=24, ge=1)
    patrol_catchup_days: int = Field(default=31, ge=1)
    # Notifications (tickets/notify.py): the global generic webhook (when a site's
    # work_order_policy names none); the base of the links in messages (default: the API's
    # own URL); e-mail receivers' SMTP server, sender and login (a receiver may give its own);
    # attempts before a notification is given up (back-off between them, 1 s doubling to 5 min).
    webhook_url: str | None = None
    public_url: str | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "caretaker@localhost"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    notify_max_attempts: int = Field(default=12, ge=1, le=100)
    # Dead letters: kept this many days after they were last received; one payload is
    # returned by the API up to this many bytes (the rest is cut, and said to be).
    dead_letter_retention_days: int = Field(default=30, ge=1)
    dead_letter_payload_max: int = Field(default=65536, ge=1, le=16 * 1024 * 1024)

    # API: seconds a request waits for a pooled database connection (then 503), and how
    # long a pooled connection lives before it is replaced (a restarted database's
    # connections are found dead by the check made when each one is taken from the pool).
    db_pool_timeout: float = Field(default=10.0, gt=0)
    db_pool_max_lifetime: float = Field(default=1800.0, ge=60)
    # Largest request body the API reads (bytes); larger ones get 413.
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Largest photo attached to a ticket (bytes); the upload routes alone take bodies this big.
    attachment_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    # Lifetime of a new API token when `caretaker token create` gives no --expires.
    token_default_expiry: Duration = timedelta(days=365)
    # People's logins (api/sessions.py): a session ends after this long without a request
    # (idle) and this long after the login whatever happens (absolute); a user name is locked
    # out for `login_lockout` after `login_max_failures` failed logins in a row, a client
    # address after `login_address_max_failures`; the session cookie is Secure on HTTPS
    # requests, and on every request when `session_cookie_secure` is true (behind a proxy
    # that ends TLS). Passwords are at least `password_min_length` characters.
    session_idle_timeout: Duration = timedelta(hours=2)
    session_absolute_timeout: Duration = timedelta(hours=12)
    # The field roles (guard, engineer: the phone page at /m/) keep a session for a shift: a
    # phone in a pocket between rounds makes no request for an hour or more, and a 12-hour
    # shift starts a little after its login.
    session_field_idle_timeout: Duration = timedelta(hours=4)
    session_field_absolute_timeout: Duration = timedelta(hours=13)
    login_max_failures: int = Field(default=5, ge=1, le=100)
    login_address_max_failures: int = Field(default=30, ge=1, le=10000)
    login_lockout: Duration = timedelta(minutes=15)
    session_cookie_secure: bool = False
    password_min_length: int = Field(default=10, ge=8, le=128)
    # Grafana (dashboards/): the read-only database role's password (`caretaker up` creates or
    # updates the role `caretaker_reader` when set; Grafana's provisioning file references the
    # same variable), where Grafana reaches the database (host:port/dbname; default: from the
    # database URL), and the service-account token `caretaker dashboards push` uses.
    grafana_db_password: SecretStr | None = None
    grafana_db_address: str | None = None
    grafana_token: SecretStr | None = None

    def link_base(self) -> str:
        """Where links in notifications point: the public URL, else the API's own."""
        return (self.public_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @property
    def embedded(self) -> bool:
        """True when Caretaker runs its own PostgreSQL and Mosquitto."""
        return self.database_url is None and self.mqtt_url is None

    def db_url(self) -> str:
        """The PostgreSQL URL to connect to (external, or the embedded cluster's)."""
        if self.database_url:
            return self.database_url
        secrets = self.state_dir / "secrets.json"
        if not secrets.exists():
            raise RuntimeError(
                f"no database configured: run `caretaker up` (embedded servers under "
                f"{self.state_dir}) or set CARETAKER_DATABASE_URL"
            )
        password = json.loads(secrets.read_text())["db_password"]
        return f"postgresql://caretaker:{quote(password)}@127.0.0.1:{self.db_port}/caretaker"

    def mqtt_target(self) -> MqttTarget:
        """The broker and this process's default login (from the URL, if it gives one)."""
        if self.mqtt_url:
            return parse_mqtt_url(self.mqtt_url, self.mqtt_ca_file)
        return MqttTarget("127.0.0.1", self.mqtt_port)

    def mqtt_login(self, username: str) -> MqttTarget:
        """The broker with a service login: the URL's, else the one `caretaker up` created.

        The embedded broker's service passwords live in `<state_dir>/secrets.json`.
        """
        target = self.mqtt_target()
        if target.username:
            return target
        secrets = self.state_dir / "secrets.json"
        stored = json.loads(secrets.read_text()).get("mqtt_passwords", {}) \
            if secrets.exists() else {}
        return target.login(username, stored.get(username))


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
