"""The one place configuration is read: environment variables prefixed CARETAKER_."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from caretaker.durations import Duration

CHECKOUT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Caretaker's settings; every field can be set as CARETAKER_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="CARETAKER_", extra="ignore")

    state_dir: Path = CHECKOUT / ".caretaker"
    # External servers; when unset, the embedded ones under state_dir are used.
    database_url: str | None = None
    mqtt_url: str | None = None

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    mqtt_port: int = 1883
    db_port: int = 5433

    retention_days: int = Field(default=365, ge=1)
    db_pool_size: int = 8

    ingest_batch_size: int = Field(default=5000, ge=1)
    ingest_batch_ms: int = Field(default=50, ge=1)
    ingest_client_id: str = "caretaker-ingest"
    # MQTT shared-subscription group ($share/<group>/...) the ingest workers join.
    ingest_share_group: str = "caretaker"
    # Messages held in memory before the ingest stops reading from the socket.
    ingest_max_pending: int = Field(default=50000, ge=100)

    rules_tick_ms: int = Field(default=500, ge=10)
    # Patrol: clock tick (gaps appear within tick + settle of a window closing), how long a
    # closed window waits for in-flight scans, repeat-scan window, planning horizon/catch-up.
    patrol_tick_ms: int = Field(default=500, ge=10, le=1000)
    patrol_settle_seconds: float = Field(default=2.0, ge=0, le=3)
    patrol_repeat_seconds: int = Field(default=300, ge=0)
    patrol_horizon_hours: int = Field(default=24, ge=1)
    patrol_catchup_days: int = Field(default=31, ge=1)
    webhook_url: str | None = None
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
    # Lifetime of a new API token when `caretaker token create` gives no --expires.
    token_default_expiry: Duration = timedelta(days=365)

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

    def mqtt(self) -> tuple[str, int]:
        """The broker's host and port."""
        if self.mqtt_url:
            parts = urlsplit(self.mqtt_url)
            return parts.hostname or "127.0.0.1", parts.port or 1883
        return "127.0.0.1", self.mqtt_port


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
