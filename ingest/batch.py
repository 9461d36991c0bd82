"""Turning a batch of received messages into rows to write: pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from ingest.payloads import (
    BadItem,
    PayloadError,
    Scan,
    Status,
    TelemetryRow,
    parse_scans,
    parse_status,
    parse_topic,
    telemetry_rows,
    us_to_datetime,
)


class Message(NamedTuple):
    """One message as received from the broker, before parsing (a tuple: cheap to make)."""

    topic: str
    payload: bytes
    received_ms: int
    lwt: bool = False  # MQTT v5 user property source=lwt


@dataclass(frozen=True, slots=True)
class StatusItem:
    """A status message of one device, with when it was received."""

    site: str
    device: str
    status: Status
    received_us: int
    # the device's telemetry came earlier in the same batch: apply this after that telemetry
    after_telemetry: bool = False

    @property
    def time_us(self) -> int:
        """The status's time: the device's own if it sent one, else the receive time."""
        return self.status.ts_us if self.status.ts_us is not None else self.received_us


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message (or one item of its array, by index) that could not be ingested, with why."""

    topic: str
    payload: bytes
    reason: str
    received_ms: int
    item: int | None = None

    @classmethod
    def of_item(cls, topic: str, bad: BadItem, received_ms: int) -> DeadLetter:
        """The dead letter of one refused array item."""
        return cls(topic, bad.payload, f"item {bad.index}: {bad.reason}", received_ms,
                   bad.index)


@dataclass
class Batch:
    """Everything one batch of messages writes, grouped by table."""

    telemetry: list[TelemetryRow] = field(default_factory=list)
    # (site, device) -> latest receive time in ms of a telemetry message
    seen: dict[tuple[str, str], int] = field(default_factory=dict)
    statuses: list[StatusItem] = field(default_factory=list)
    scans: dict[tuple[str, str], list[Scan]] = field(default_factory=dict)
    scans_received_ms: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    # epoch ms of each telemetry message's (first) reading: for the commit-lag histogram
    stamps: list[int] = field(default_factory=list)
    # `telemetry` in COPY text format (ingest/store.py copy_text), when the caller could
    # prepare it ahead of the write (every series already known)
    copy_data: bytes | None = None
    # the messages themselves: the writer checks the sites (and the scans' guards) against
    # the registry and, if one is unknown, assembles the batch again without their messages
    messages: list[Message] = field(default_factory=list)

    def sites(self) -> set[str]:
        """The sites this batch would write rows for."""
        return ({site for site, _ in self.seen} | {s.site for s in self.statuses}
                | {site for site, _ in self.scans})


def assemble(messages: list[Message]) -> Batch:
    """Parse every message; bad ones (or bad array items) become dead letters alone."""
    batch = Batch(messages=messages)
    telemetry, seen, stamps, dead = batch.telemetry, batch.seen, batch.stamps, batch.dead
    for msg in messages:
        try:
            topic = parse_topic(msg.topic)
            if topic.kind == "telemetry":
                rows, bad = telemetry_rows(msg.payload, now_ms=msg.received_ms, site=topic.site,
                                           device=topic.entity)
                if bad:
                    dead += _refused(msg, bad, usable=bool(rows))
                if not rows:
                    continue
                telemetry += rows
                stamps.append(rows[0][2] // 1000)
                key = (topic.site, topic.entity)
                if seen.get(key, 0) < msg.received_ms:
                    seen[key] = msg.received_ms
            elif topic.kind == "status":
                status = parse_status(msg.payload, now_ms=msg.received_ms, lwt=msg.lwt)
                batch.statuses.append(
                    StatusItem(topic.site, topic.entity, status, msg.received_ms * 1000,
                               (topic.site, topic.entity) in seen))
            else:
                scans, bad = parse_scans(topic.site, topic.entity, msg.payload,
                                         now=us_to_datetime(msg.received_ms * 1000))
                if bad:
                    dead += _refused(msg, bad, usable=bool(scans))
                if scans:
                    batch.scans.setdefault((topic.site, topic.entity), []).extend(scans)
                    batch.scans_received_ms = max(batch.scans_received_ms, msg.received_ms)
        except PayloadError as exc:
            dead.append(DeadLetter(msg.topic, msg.payload, exc.reason, msg.received_ms))
        except UnicodeDecodeError as exc:
            dead.append(DeadLetter(msg.topic, msg.payload, f"not UTF-8: {exc}", msg.received_ms))
    return batch


def _refused(msg: Message, bad: list[BadItem], *, usable: bool) -> list[DeadLetter]:
    """Dead letters of an array's bad items: one each, or the whole message if none was good."""
    if usable:
        return [DeadLetter.of_item(msg.topic, b, msg.received_ms) for b in bad]
    first = bad[0]
    return [DeadLetter(msg.topic, msg.payload, f"all {len(bad)} items refused; item"
                       f" {first.index}: {first.reason}", msg.received_ms)]


def without(batch: Batch, sites: set[str], guards: set[tuple[str, str]]) -> Batch:
    """The batch again without the messages of unknown `sites` or scans of unknown `guards`.

    Those messages become dead letters whole; everything else is assembled as before.
    """
    keep: list[Message] = []
    refused: list[DeadLetter] = []
    for msg in batch.messages:
        try:
            topic = parse_topic(msg.topic)
        except PayloadError:
            keep.append(msg)  # dead-lettered again by assemble, for its topic
            continue
        if topic.site in sites:
            refused.append(DeadLetter(msg.topic, msg.payload, f"unknown site {topic.site!r}",
                                      msg.received_ms))
        elif topic.kind == "scans" and (topic.site, topic.entity) in guards:
            refused.append(DeadLetter(
                msg.topic, msg.payload,
                f"unknown guard {topic.entity!r} of site {topic.site!r}", msg.received_ms))
        else:
            keep.append(msg)
    again = assemble(keep)
    again.dead += refused
    return again


class Pace:
    """How long the next batch stays open: long enough to gather `target` messages at the
    recent arrival rate, between `least` and `most` seconds.

    A batch has a fixed cost (a transaction, a dozen statements, the stats row), so a thin
    stream closed by a fixed timer pays more per message than a busy one; sizing the window
    from the rate keeps batches about the same size, hence the cost per message. At and above
    `target / least` messages a second the window is `least`, as before.
    """

    def __init__(self, *, least: float, most: float, target: int,
                 smoothing: float = 0.3) -> None:
        self.least, self.most, self.target, self.smoothing = least, most, target, smoothing
        self.rate: float | None = None  # messages a second, smoothed; None until measured

    def window(self) -> float:
        """Seconds the next batch gathers, from the previous batch's close."""
        if not self.rate:
            return self.least
        return min(self.most, max(self.least, self.target / self.rate))

    def deadline(self, closed_at: float, first: float) -> float:
        """When the batch whose first message was taken at `first` closes, the previous one
        having closed at `closed_at` (monotonic seconds).

        The window counts from the previous close, so what arrived while that batch was
        parsed and written belongs to this one and a batch holds about `target` messages
        whatever the write takes; after a pause longer than a window it counts from the first
        message, so no message waits more than one window (plus a write)."""
        window = self.window()
        return (closed_at if first - closed_at < window else first) + window

    def observe(self, messages: int, seconds: float) -> None:
        """`messages` arrived over `seconds` (from the previous batch's close to this one's)."""
        if messages <= 0 or seconds <= 0:
            return
        rate = messages / seconds
        self.rate = rate if self.rate is None else (
            self.smoothing * rate + (1 - self.smoothing) * self.rate)


def status_changes(online: bool | None, items: list[StatusItem]) -> list[StatusItem]:
    """The status messages of one device (in arrival order) that change its online state.

    A repeated or redelivered status (e.g. the retained `online` sent again on every
    subscription) changes nothing, so it writes nothing.
    """
    changes = []
    for item in items:
        now_online = item.status.status == "online"
        if online is None or now_online != online:
            changes.append(item)
            online = now_online
    return changes
