"""The simulated fleet: the devices of a site configuration, or a generated fleet of any size."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from caretaker.ids import is_ident

log = logging.getLogger(__name__)

# Devices per generated site: a large estate, and enough sites that site scoping is exercised.
DEVICES_PER_SITE = 100
# The mix of a generated fleet: (device type, id prefix, weight).
GENERATED_MIX = (
    ("water_pump", "pump", 3),
    ("fire_pump", "fire-pump", 1),
    ("jockey_pump", "jockey-pump", 1),  # the fire-pump test log checks it daily
    ("elevator", "elev", 4),
    ("chiller", "chiller", 1),
    ("power_meter", "meter", 2),
    ("water_tank", "tank", 2),
)
GENERATED_TIMEZONE = "Asia/Shanghai"


@dataclass(frozen=True, slots=True)
class Device:
    """One simulated device: where it is, what it is, and its ordinal among its type at the site."""

    site: str
    id: str
    type: str
    index: int = 0
    name: str = ""
    utc_offset_s: int = 0

    @property
    def key(self) -> str:
        """The device's fleet-wide name, `site/device`."""
        return f"{self.site}/{self.id}"


def valid_id(value: str) -> bool:
    """True when `value` is a valid site, device or guard id per the MQTT interface."""
    return is_ident(value)


def standard_offset(timezone: str, *, at: datetime | None = None) -> int:
    """The zone's UTC offset in seconds without daylight saving, for daily cycles.

    Daily cycles use the standard offset so counters that integrate them (kWh, door
    cycles) never run backwards when clocks change.
    """
    zone = ZoneInfo(timezone)
    when = at or datetime(2026, 1, 1, tzinfo=UTC)
    offset = zone.utcoffset(when) or timedelta(0)
    return int((offset - (zone.dst(when) or timedelta(0))).total_seconds())


def load_config(path: Path | str | None = None) -> dict[str, Any]:
    """Read a site configuration YAML file (the example site by default)."""
    from caretaker.site_config import example_document, read_file

    config = example_document() if path is None else read_file(Path(path))
    if not isinstance(config, dict) or not isinstance(config.get("site"), dict):
        raise ValueError(f"{path}: not a site configuration (no `site:` section)")
    return config


def fleet_from_config(config: dict[str, Any], *, known_types: set[str]) -> list[Device]:
    """The devices of a site configuration that have a model; others are logged and skipped."""
    site = config["site"]
    site_id = str(site["id"])
    if not valid_id(site_id):
        raise ValueError(f"invalid site id {site_id!r}")
    offset = standard_offset(str(site.get("timezone", "UTC")))
    counts: dict[str, int] = {}
    devices: list[Device] = []
    skipped: list[str] = []
    for item in config.get("devices") or []:
        if item.get("status", "active") == "retired":
            continue
        device_id, type_id = str(item["id"]), str(item["type"])
        if not valid_id(device_id):
            raise ValueError(f"invalid device id {device_id!r}")
        if type_id not in known_types:
            skipped.append(f"{device_id} ({type_id})")
            continue
        index = counts.get(type_id, 0)
        counts[type_id] = index + 1
        devices.append(Device(site_id, device_id, type_id, index, str(item.get("name", "")),
                              offset))
    if skipped:
        log.warning("no simulator model for %d device(s), not simulated: %s",
                    len(skipped), ", ".join(skipped))
    return devices


def generate_fleet(count: int, *, site_prefix: str = "sim-site") -> list[Device]:
    """A fleet of `count` devices of mixed types, `DEVICES_PER_SITE` to a site.

    Site ids are `{site_prefix}-001`, `-002`, …; device ids `{prefix}-0001` per type and site.
    The mix is deterministic (the same count gives the same fleet).
    """
    if count < 1:
        raise ValueError("a fleet needs at least one device")
    offset = standard_offset(GENERATED_TIMEZONE)
    wheel = [(t, p) for t, p, w in GENERATED_MIX for _ in range(w)]
    devices: list[Device] = []
    counts: dict[tuple[str, str], int] = {}
    for n in range(count):
        site_id = f"{site_prefix}-{n // DEVICES_PER_SITE + 1:03d}"
        type_id, prefix = wheel[n % len(wheel)]
        index = counts.get((site_id, type_id), 0)
        counts[(site_id, type_id)] = index + 1
        devices.append(Device(site_id, f"{prefix}-{index + 1:04d}", type_id, index, "", offset))
    bad = [d.key for d in devices if not (valid_id(d.site) and valid_id(d.id))]
    if bad:
        raise ValueError(f"invalid generated ids (site prefix too long?): {bad[0]}")
    return devices
