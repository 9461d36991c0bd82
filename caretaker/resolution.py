"""Which stored resolution answers a telemetry read: raw points, 1-minute or 1-hour rollups.

Pure decisions shared by the API, the console and the rollup job: the tier is picked from the
range asked (or from the bucket width asked). The database function telemetry_rollup
(migration 020) then reads the tier's whole buckets and the rest raw, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from caretaker.errors import Invalid

EPOCH = datetime(2000, 1, 3, tzinfo=UTC)  # time_bucket's origin: widths align on it


@dataclass(frozen=True)
class Tier:
    """A stored resolution: its name in API responses, its table, its bucket width."""

    name: str
    table: str
    width: timedelta

    @property
    def rolled(self) -> bool:
        return self.name != "raw"


RAW = Tier("raw", "telemetry_points", timedelta(0))
MINUTE = Tier("1m", "telemetry_1m", timedelta(minutes=1))
HOUR = Tier("1h", "telemetry_1h", timedelta(hours=1))
TIERS = {t.name: t for t in (RAW, MINUTE, HOUR)}

# Ranges up to RAW_SPAN are read raw, up to MINUTE_SPAN from 1m rollups, longer ones from 1h:
# at most ~1,440 points per series for the minute tier of a day, ~720 hours for a month.
RAW_SPAN = timedelta(hours=6)
MINUTE_SPAN = timedelta(days=7)
# An hour is rolled up this long after it ends (points still in flight land first).
SETTLE = timedelta(minutes=1)


def for_span(span: timedelta) -> Tier:
    """The tier a range of this length is read from when no bucket is asked for."""
    if span <= RAW_SPAN:
        return RAW
    return MINUTE if span <= MINUTE_SPAN else HOUR


def for_bucket(bucket: timedelta) -> Tier:
    """The coarsest tier whose buckets add up exactly to buckets of this width."""
    for tier in (HOUR, MINUTE):
        if bucket >= tier.width and bucket % tier.width == timedelta(0):
            return tier
    return RAW


def for_chart(width: timedelta) -> tuple[Tier, timedelta]:
    """The tier and bucket width for a chart wanting buckets of about `width`: the coarsest
    tier not wider than it, the width rounded up to a whole number of the tier's buckets."""
    tier = next((t for t in (HOUR, MINUTE) if width >= t.width), RAW)
    if not tier.rolled:
        return tier, width
    return tier, -(-width // tier.width) * tier.width


def named(name: str) -> Tier:
    """A tier by its API name (raw, 1m, 1h)."""
    try:
        return TIERS[name]
    except KeyError:
        raise Invalid(f"resolution: {name!r} is not one of {', '.join(TIERS)}") from None


def ready_until(now: datetime) -> datetime:
    """The latest hour bucket start the job may roll up at `now` (that hour ended and settled)."""
    return now - SETTLE - HOUR.width
