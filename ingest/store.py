"""Writing parsed batches: telemetry (series, points, latest readings, the rollup queue)
through COPY + ON CONFLICT, statuses, scans, dead letters, devices' last_seen/online, and the
ingest_events outbox — all in the caller's transaction.

Connections return rows as dicts (caretaker/db.py). Sites are never created here: messages
naming an unknown site, and scans of an unknown guard, become dead letters.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ingest.batch import Batch, DeadLetter, StatusItem, status_changes, without
from ingest.payloads import Scan, datetime_to_ms, us_to_datetime

log = logging.getLogger(__name__)

CHANNEL = "caretaker_events"
EVENT_METRICS_EVERY = 5.0  # seconds between asking again which metrics need outbox events

# Given by the composition root: which metrics' new readings the outbox must carry.
MetricsProvider = Callable[[psycopg.Connection[Any]], Sequence[str]]

STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS _ingest_points ("
    " series_id integer, ts_us bigint, value double precision, text_value text)"
    " ON COMMIT DELETE ROWS"
)
# The new points, the series' latest readings moved forward, and the hours they fall in
# queued for the rollups; with one outbox row of the new readings of the metrics asked for
# (or all) when %(events)s.
INSERT_POINTS = """
WITH ins AS (
    INSERT INTO telemetry_points (series_id, time, value, text_value)
    SELECT series_id, timestamptz 'epoch' + ts_us * interval '1 microsecond', value, text_value
    FROM _ingest_points
    ON CONFLICT DO NOTHING
    RETURNING series_id, time, value, text_value),
latest AS (
    INSERT INTO latest_readings AS l (series_id, time, value, text_value)
    SELECT DISTINCT ON (series_id) series_id, time, value, text_value
    FROM ins ORDER BY series_id, time DESC
    ON CONFLICT (series_id) DO UPDATE SET
        time = excluded.time, value = excluded.value, text_value = excluded.text_value
    WHERE l.time < excluded.time),
pending AS (
    INSERT INTO rollup_pending (series_id, bucket)
    SELECT DISTINCT series_id, date_trunc('hour', time, 'UTC') FROM ins
    WHERE time >= date_trunc('hour', now(), 'UTC') ORDER BY 1, 2
    ON CONFLICT DO NOTHING),
-- Points of an hour already ended: its pending row is locked to the commit (DO UPDATE locks
-- even when WHERE false updates nothing), so the rollup job (rules/rollups.py), which skips
-- locked rows, never rolls that hour up without these points; the open hour's rows are
-- never claimed by the job, so the steady stream takes no lock.
pending_late AS (
    INSERT INTO rollup_pending AS p (series_id, bucket)
    SELECT DISTINCT series_id, date_trunc('hour', time, 'UTC') FROM ins
    WHERE time < date_trunc('hour', now(), 'UTC') ORDER BY 1, 2
    ON CONFLICT (series_id, bucket) DO UPDATE SET bucket = excluded.bucket WHERE false),
ev AS (
    INSERT INTO ingest_events (kind, payload)
    SELECT 'telemetry', jsonb_agg(jsonb_build_object('site', s.site_id, 'device', s.device_id,
               'metric', s.metric, 'ts', (extract(epoch FROM ins.time) * 1000)::bigint,
               'value', ins.value, 'text', ins.text_value) ORDER BY ins.time)
    FROM ins JOIN series s ON s.id = ins.series_id
    WHERE %(events)s AND (%(all)s OR s.metric = ANY(%(metrics)s)) HAVING count(*) > 0
    RETURNING 1)
SELECT (SELECT count(*) FROM ins) AS inserted, (SELECT count(*) FROM ev) AS events"""

SeriesKey = tuple[str, str, str]  # site, device, metric


class SeriesIds:
    """The series ids a worker has seen: a new series is created inside the batch's
    transaction, idempotently (two workers creating one series at once: one waits for the
    other, and both get its one id).

    Ids found or made inside a transaction stay `pending` until the caller says it committed
    (`commit`): after a rollback they may not exist (`rollback` forgets them). Only then are
    they `known`, which the parsing thread may read to build COPY text ahead of the write.
    """

    def __init__(self) -> None:
        self.known: dict[SeriesKey, int] = {}
        self.pending: dict[SeriesKey, int] = {}

    def commit(self) -> None:
        """The transaction that resolved the pending ids committed: keep them."""
        if self.pending:
            self.known.update(self.pending)
            self.pending = {}

    def rollback(self) -> None:
        """The transaction (or a savepoint of it) rolled back: forget what it resolved."""
        self.pending = {}

    def resolve(self, conn: psycopg.Connection[Any], keys: Iterable[SeriesKey]
                ) -> dict[SeriesKey, int]:
        """The id of each key, finding or creating the series not seen yet."""
        out: dict[SeriesKey, int] = {}
        missing: set[SeriesKey] = set()
        for key in keys:
            sid = self.known.get(key) or self.pending.get(key)
            if sid is None:
                missing.add(key)
            else:
                out[key] = sid
        if missing:
            found = self._create(conn, sorted(missing))
            self.pending.update(found)
            out.update(found)
        return out

    @staticmethod
    def _create(conn: psycopg.Connection[Any], keys: list[SeriesKey]) -> dict[SeriesKey, int]:
        cols = ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])
        select = ("SELECT id, site_id, device_id, metric FROM series"
                  " WHERE (site_id, device_id, metric) IN"
                  " (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))")
        found = {(r["site_id"], r["device_id"], r["metric"]): r["id"]
                 for r in conn.execute(select, cols).fetchall()}
        new = [k for k in keys if k not in found]
        if new:
            # sorted: one lock order for every worker; a concurrent creator makes us wait,
            # then ON CONFLICT leaves its row, which the select below sees once committed
            for r in conn.execute(
                    "INSERT INTO series (site_id, device_id, metric)"
                    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) ORDER BY 1, 2, 3"
                    " ON CONFLICT DO NOTHING RETURNING id, site_id, device_id, metric",
                    ([k[0] for k in new], [k[1] for k in new], [k[2] for k in new])).fetchall():
                found[(r["site_id"], r["device_id"], r["metric"])] = r["id"]
            if len(found) < len(keys):
                found.update({(r["site_id"], r["device_id"], r["metric"]): r["id"]
                              for r in conn.execute(select, cols).fetchall()})
        return found


@dataclass
class Written:
    """What one batch wrote: row counts, and which outbox kinds got an event."""

    telemetry: int = 0
    statuses: int = 0
    scans: int = 0
    dead_letters: int = 0
    registered: list[tuple[str, str]] = field(default_factory=list)
    events: set[str] = field(default_factory=set)

    @property
    def rows(self) -> int:
        return self.telemetry + self.statuses + self.scans


def notify(conn: psycopg.Connection[Any], kinds: Iterable[str]) -> None:
    """Tell the workers listening on caretaker_events which kinds have new outbox rows."""
    for kind in sorted(kinds):
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, kind))


def admit(conn: psycopg.Connection[Any], batch: Batch) -> Batch:
    """The batch without messages of unknown sites and scans of unknown guards (dead letters).

    Unknown devices of a known site are welcome (auto-registered as unassigned); a site is
    created only by configuration, never by a topic.
    """
    sites = batch.sites()
    if not sites:
        return batch
    known = {r["id"] for r in conn.execute(
        "SELECT id FROM sites WHERE id = ANY(%s)", (sorted(sites),)).fetchall()}
    unknown_sites = sites - known
    keys = sorted(k for k in batch.scans if k[0] in known)
    unknown_guards: set[tuple[str, str]] = set()
    if keys:
        found = {(r["site_id"], r["id"]) for r in conn.execute(
            "SELECT site_id, id FROM guards"
            " WHERE (site_id, id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
            ([k[0] for k in keys], [k[1] for k in keys])).fetchall()}
        unknown_guards = set(keys) - found
    if not unknown_sites and not unknown_guards:
        return batch
    return without(batch, unknown_sites, unknown_guards)


def store_scans(conn: psycopg.Connection[Any], site_id: str, guard_id: str,
                scans: Sequence[Scan], *, received_at: datetime) -> list[uuid.UUID]:
    """Store a guard's scans with one outbox event; return the scan_ids newly stored.

    A scan_id is stored once whatever its timestamp: the `scan_ids` table (scan_id primary
    key, written in the same statement) decides, so concurrent writers cannot both store it.
    The checkpoint is found by (site, tag); an unknown tag is kept with checkpoint_id NULL.
    Runs in the caller's transaction (the HTTP route's or the ingest batch's).
    """
    if not scans:
        return []
    first: dict[uuid.UUID, Scan] = {}
    for scan in scans:
        first.setdefault(scan.scan_id, scan)
    # one lock order (by scan_id) for every writer: no deadlock between them
    items = [{"scan_id": str(s.scan_id), "time": s.ts.isoformat(), "tag": s.tag,
              "result": s.result, "readings": s.readings, "note": s.note}
             for _, s in sorted(first.items())]
    rows = conn.execute(
        "WITH s AS (SELECT * FROM jsonb_to_recordset(%(items)s) AS s(scan_id uuid,"
        "  time timestamptz, tag text, result text, readings jsonb, note text)),"
        " ids AS (INSERT INTO scan_ids (scan_id, time) SELECT scan_id, time FROM s"
        "  ORDER BY scan_id ON CONFLICT DO NOTHING RETURNING scan_id),"
        " ins AS (INSERT INTO scans (time, scan_id, site_id, guard_id, tag, checkpoint_id,"
        "  result, readings, note, received_at)"
        "  SELECT s.time, s.scan_id, %(site)s, %(guard)s, s.tag, c.id, s.result,"
        "   coalesce(s.readings, '{}'), s.note, %(received_at)s"
        "  FROM s JOIN ids USING (scan_id)"
        "  LEFT JOIN checkpoints c ON c.site_id = %(site)s AND c.tag = s.tag"
        "  ON CONFLICT DO NOTHING RETURNING scan_id, time),"
        " ev AS (INSERT INTO ingest_events (kind, payload)"
        "  SELECT 'scans', jsonb_agg(jsonb_build_object('site', %(site)s::text,"
        "   'scan_id', scan_id, 'ts', (extract(epoch FROM time) * 1000)::bigint) ORDER BY time)"
        "  FROM ins HAVING count(*) > 0 RETURNING 1)"
        " SELECT scan_id FROM ins",
        {"items": Jsonb(items), "site": site_id, "guard": guard_id, "received_at": received_at},
    ).fetchall()
    stored = [r["scan_id"] for r in rows]
    if stored:
        notify(conn, ["scans"])
    return stored


def store_dead_letters(conn: psycopg.Connection[Any], dead: Sequence[DeadLetter], *,
                       source: str = "mqtt") -> int:
    """Keep what could not be ingested (topic, raw bytes, item, reason); return how many.

    A dead letter received again (a redelivery, a retained message at each re-subscribe) is
    counted on its first row — keyed by source, topic, payload hash and item — not added.
    """
    if not dead:
        return 0
    merged: dict[tuple[str, bytes, int | None], list[Any]] = {}
    for d in dead:
        key = (d.topic, d.payload, d.item)
        when = us_to_datetime(d.received_ms * 1000)
        seen = merged.get(key)
        if seen is None:
            merged[key] = [when, when, d.reason, 1]
        else:  # the same message twice in one batch: one row, counted twice
            seen[0], seen[1], seen[2], seen[3] = (min(seen[0], when), max(seen[1], when),
                                                  d.reason, seen[3] + 1)
    keys = sorted(merged, key=lambda k: (k[0], k[1], -1 if k[2] is None else k[2]))
    conn.execute(
        "INSERT INTO dead_letters AS d (received_at, last_received_at, source, topic, payload,"
        " item, reason, count)"
        " SELECT u.first, u.last, %s, u.topic, u.payload, u.item, u.reason, u.n"
        " FROM unnest(%s::timestamptz[], %s::timestamptz[], %s::text[], %s::bytea[],"
        "  %s::integer[], %s::text[], %s::bigint[])"
        "  AS u(first, last, topic, payload, item, reason, n)"
        " ON CONFLICT (source, topic, payload_hash, item) DO UPDATE SET"
        "  count = d.count + excluded.count,"
        "  last_received_at = greatest(d.last_received_at, excluded.last_received_at),"
        "  reason = excluded.reason",
        (source, [merged[k][0] for k in keys], [merged[k][1] for k in keys],
         [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
         [merged[k][2] for k in keys], [merged[k][3] for k in keys]))
    return len(dead)


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_field(text: str) -> str:
    return text.translate(_ESCAPES) if ("\\" in text or "\t" in text or "\n" in text
                                        or "\r" in text) else text


def copy_text(rows: Sequence[tuple[Any, ...]], ids: Mapping[SeriesKey, int]) -> bytes | None:
    """Telemetry rows as COPY text of (series id, time, value, text), built in one go (much
    cheaper than write_row); None when a row's series is not in `ids`.

    Values are finite floats, so only text values can need escaping.
    """
    lines: list[str] = []
    append = lines.append
    get = ids.get
    for site, device, ts_us, metric, value, text in rows:
        sid = get((site, device, metric))
        if sid is None:
            return None
        if text is None:
            append(f"{sid}\t{ts_us}\t{value!r}\t\\N\n")
        else:
            append(f"{sid}\t{ts_us}\t\\N\t{_copy_field(text)}\n")
    return "".join(lines).encode()


def store_telemetry(conn: psycopg.Connection[Any], rows: Sequence[tuple[Any, ...]], *,
                    event_metrics: Sequence[str] | None = (), copy_data: bytes | None = None,
                    series: SeriesIds | None = None) -> tuple[int, bool]:
    """COPY readings into a staging table, insert the new ones; (rows inserted, event written).

    Rows are (site, device, ts_us, metric, value, text_value). Series not in `series` (a
    worker's cache; None: a fresh one) are found or created first; new points move their
    series' latest readings forward and queue their hours for the rollups, all in the
    caller's transaction. New readings of `event_metrics` (None: of every metric) get one
    outbox event. `copy_data` is `copy_text(rows, series.known)` when the caller built it.
    """
    if not rows:
        return 0, False
    if copy_data is None:
        series = series if series is not None else SeriesIds()
        ids = series.resolve(conn, {(r[0], r[1], r[3]) for r in rows})
        copy_data = copy_text(rows, ids)
        assert copy_data is not None  # every key was just resolved
    cur = conn.cursor()
    cur.execute(STAGING)
    with cur.copy("COPY _ingest_points FROM STDIN") as copy:
        copy.write(copy_data)
    row = cur.execute(INSERT_POINTS, {"events": event_metrics is None or bool(event_metrics),
                                      "all": event_metrics is None,
                                      "metrics": list(event_metrics or ())}).fetchone()
    assert row is not None  # an aggregate query returns one row
    return int(row["inserted"]), int(row["events"]) > 0


def touch_devices(conn: psycopg.Connection[Any], seen: dict[tuple[str, str], int]
                  ) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """Mark devices that sent telemetry as seen and online, registering unknown ones.

    Returns (newly registered devices, status events for devices that came online).
    """
    if not seen:
        return [], []
    keys = sorted(seen)  # one lock order for every worker: no deadlocks between them
    sites = [s for s, _ in keys]
    devices = [d for _, d in keys]
    times = [us_to_datetime(seen[k] * 1000) for k in keys]
    rows = conn.execute(
        "WITH u AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[])"
        "  AS u(site_id, id, seen)),"
        " prev AS (SELECT d.site_id, d.id, d.online FROM devices d JOIN u USING (site_id, id)),"
        " up AS (INSERT INTO devices AS d (site_id, id, name, status, last_seen, online,"
        "   online_changed_at)"
        "  SELECT site_id, id, id, 'unassigned', seen, true, seen FROM u ORDER BY site_id, id"
        "  ON CONFLICT (site_id, id) DO UPDATE SET"
        "   last_seen = greatest(d.last_seen, excluded.last_seen), online = true,"
        "   online_changed_at = CASE WHEN d.online THEN d.online_changed_at"
        "    ELSE excluded.last_seen END,"
        "   online_source = CASE WHEN d.online THEN d.online_source ELSE 'telemetry' END"
        # a second's precision is enough for last_seen; skipping the update saves dead rows
        "  WHERE d.last_seen IS NULL OR d.online IS NOT TRUE"
        "   OR d.last_seen < excluded.last_seen - interval '1 second'"
        "  RETURNING d.site_id, d.id, d.last_seen, (xmax = 0) AS inserted)"
        " SELECT up.site_id, up.id, up.last_seen, up.inserted FROM up"
        " LEFT JOIN prev USING (site_id, id) WHERE up.inserted OR prev.online IS NOT TRUE",
        (sites, devices, times),
    ).fetchall()
    registered: list[tuple[str, str]] = []
    events: list[dict[str, Any]] = []
    for r in rows:
        site, device = r["site_id"], r["id"]
        if r["inserted"]:
            registered.append((site, device))
        events.append({"site": site, "device": device, "ts": datetime_to_ms(r["last_seen"]),
                       "status": "online", "source": "telemetry"})
    if events:
        conn.execute(
            "INSERT INTO device_status (time, site_id, device_id, status, source)"
            " SELECT to_timestamp(e.ts / 1000.0), e.site, e.device, 'online', 'telemetry'"
            " FROM jsonb_to_recordset(%s) AS e(site text, device text, ts bigint)"
            " ON CONFLICT DO NOTHING", (Jsonb(events),))
    return registered, events


def store_statuses(conn: psycopg.Connection[Any], items: Sequence[StatusItem]
                   ) -> list[dict[str, Any]]:
    """Apply status messages that change a device's online state; return their outbox events."""
    if not items:
        return []
    by_device: dict[tuple[str, str], list[StatusItem]] = {}
    for item in items:
        by_device.setdefault((item.site, item.device), []).append(item)
    keys = sorted(by_device)
    sites = [s for s, _ in keys]
    devices = [d for _, d in keys]
    conn.execute(
        "INSERT INTO devices (site_id, id, name, status)"
        " SELECT s, d, d, 'unassigned' FROM unnest(%s::text[], %s::text[]) AS u(s, d)"
        " ORDER BY s, d ON CONFLICT DO NOTHING", (sites, devices))
    current = {
        (r["site_id"], r["id"]): r["online"]
        for r in conn.execute(
            "SELECT site_id, id, online FROM devices"
            " WHERE (site_id, id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
            " ORDER BY site_id, id FOR UPDATE", (sites, devices)).fetchall()
    }
    events: list[dict[str, Any]] = []
    for key in keys:
        changes = status_changes(current.get(key), by_device[key])
        if not changes:
            continue
        for ch in changes:
            events.append({"site": ch.site, "device": ch.device, "ts": ch.time_us // 1000,
                           "status": ch.status.status, "source": ch.status.source})
        last = changes[-1]
        online = last.status.status == "online"
        conn.execute(
            "UPDATE devices SET online = %s, online_changed_at = %s, online_source = %s,"
            " last_seen = CASE WHEN %s THEN greatest(last_seen, %s) ELSE last_seen END,"
            " updated_at = now() WHERE site_id = %s AND id = %s",
            (online, us_to_datetime(last.time_us), last.status.source, online,
             us_to_datetime(last.received_us), key[0], key[1]))
    if events:
        conn.execute(
            "INSERT INTO device_status (time, site_id, device_id, status, source)"
            " SELECT timestamptz 'epoch' + e.ts * interval '1 millisecond', e.site, e.device,"
            "  e.status, e.source"
            " FROM jsonb_to_recordset(%s) AS e(site text, device text, ts bigint, status text,"
            "  source text) ON CONFLICT DO NOTHING", (Jsonb(events),))
    return events


class EventMetrics:
    """Which metrics' new readings go to the outbox, asked of a provider every few seconds.

    The provider comes from the composition root (the rules know which metrics they watch;
    the ingest does not know the rules). Without one, every metric's readings do: a missing
    wiring costs outbox volume, never a reading a rule should have seen.
    """

    def __init__(self, provider: MetricsProvider | None = None,
                 every: float = EVENT_METRICS_EVERY) -> None:
        self.provider = provider
        self.every = every
        self._metrics: list[str] = []
        self._read_at = float("-inf")

    def get(self, conn: psycopg.Connection[Any]) -> list[str] | None:
        """The metrics (None: all), asked again when the answer is older than `every` seconds."""
        if self.provider is None:
            return None
        if time.monotonic() - self._read_at >= self.every:
            self._metrics = sorted(set(self.provider(conn)))
            self._read_at = time.monotonic()
        return self._metrics


def write_batch(conn: psycopg.Connection[Any], batch: Batch, *,
                event_metrics: Sequence[str] | None = (),
                series: SeriesIds | None = None) -> Written:
    """Write a whole batch in the caller's transaction, with its outbox rows and NOTIFY.

    New readings of `event_metrics` (None: of every metric) get one telemetry outbox event.
    `series` is the worker's series cache (the caller commits or rolls it back with the
    transaction); None: a fresh one.
    """
    batch = admit(conn, batch)
    out = Written()
    out.dead_letters = store_dead_letters(conn, batch.dead)
    out.telemetry, tel_event = store_telemetry(conn, batch.telemetry,
                                               event_metrics=event_metrics,
                                               copy_data=batch.copy_data, series=series)
    if tel_event:
        out.events.add("telemetry")
    # in arrival order per device: its status messages sent before its readings, the
    # readings (online from telemetry), then the status messages sent after them
    status_events = store_statuses(conn, [s for s in batch.statuses if not s.after_telemetry])
    out.registered, online_events = touch_devices(conn, batch.seen)
    status_events += online_events
    status_events += store_statuses(conn, [s for s in batch.statuses if s.after_telemetry])
    out.statuses = len(status_events)
    if status_events:
        status_events.sort(key=lambda e: e["ts"])
        conn.execute("INSERT INTO ingest_events (kind, payload) VALUES ('status', %s)",
                     (Jsonb(status_events),))
        out.events.add("status")
    if batch.scans:
        received_at = us_to_datetime(batch.scans_received_ms * 1000)
        for (site, guard), scans in sorted(batch.scans.items()):
            # store_scans notifies for itself; the HTTP route calls it alone
            out.scans += len(store_scans(conn, site, guard, scans, received_at=received_at))
    notify(conn, out.events)
    if out.registered:
        log.info("auto-registered %d device(s) as unassigned: %s", len(out.registered),
                 ", ".join(f"{s}/{d}" for s, d in out.registered[:20]))
    return out
