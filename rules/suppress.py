"""The suppress stage: maintenance windows and inhibition, one `mutes(target, now)` shape."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import psycopg


@dataclass(frozen=True)
class Target:
    """The alarm a mute is asked about."""

    site: str
    device: str
    rule: str


class Mute(Protocol):
    """Anything that can silence an alarm; `label` is what the alarm record shows."""

    @property
    def label(self) -> str:
        """How the alarm record names this mute."""
        ...

    def mutes(self, target: Target, now: datetime) -> bool:
        """True when this silences the target at `now`."""
        ...


@dataclass(frozen=True)
class MaintenanceWindow:
    """A device or a whole site under maintenance from start to end."""

    site: str
    id: str
    device: str | None
    start: datetime
    end: datetime
    reason: str

    @property
    def label(self) -> str:
        return f"maintenance:{self.id}"

    def mutes(self, target: Target, now: datetime) -> bool:
        return (target.site == self.site and self.start <= now < self.end
                and (self.device is None or self.device == target.device))


@dataclass(frozen=True)
class Inhibition:
    """An active upstream alarm that explains (and so mutes) other alarms of its site."""

    site: str
    alarm_id: int
    device: str
    rule: str
    rules: Any  # "*" or a list of rule ids
    scope: str  # "site" or "device"

    @property
    def label(self) -> str:
        return f"inhibited:{self.alarm_id}"

    def mutes(self, target: Target, now: datetime) -> bool:
        if target.site != self.site or (target.device, target.rule) == (self.device, self.rule):
            return False
        if self.scope == "device" and target.device != self.device:
            return False
        return self.rules == "*" or target.rule in self.rules


def first_mute(mutes: list[Mute], target: Target, now: datetime) -> Mute | None:
    """The first mute that silences the target, or None."""
    for mute in mutes:
        if mute.mutes(target, now):
            return mute
    return None


def load_mutes(conn: psycopg.Connection[Any], site: str, now: datetime) -> list[Mute]:
    """The site's maintenance windows open at `now` and its active inhibiting alarms."""
    mutes: list[Mute] = [
        MaintenanceWindow(r["site_id"], r["id"], r["device_id"], r["starts_at"], r["ends_at"],
                          r["reason"])
        for r in conn.execute(
            "SELECT site_id, id, device_id, starts_at, ends_at, reason FROM maintenance_windows"
            " WHERE site_id = %s AND starts_at <= %s AND ends_at > %s ORDER BY starts_at, id",
            (site, now, now))
    ]
    mutes += [
        Inhibition(r["site_id"], r["id"], r["device_id"], r["rule_id"],
                   r["inhibits"].get("rules", "*"), r["inhibits"].get("scope", "site"))
        for r in conn.execute(
            "SELECT a.id, a.site_id, a.device_id, a.rule_id, r.inhibits FROM alarms a"
            " JOIN rules r ON r.site_id = a.site_id AND r.id = a.rule_id"
            " WHERE a.site_id = %s AND a.state <> 'cleared' AND r.inhibits IS NOT NULL"
            " ORDER BY a.id", (site,))
    ]
    return mutes
