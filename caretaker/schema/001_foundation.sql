-- Registry, hypertables for telemetry, device status and scans, dead letters, API tokens.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE DOMAIN ident AS text CHECK (VALUE ~ '^[A-Za-z0-9_.-]{1,64}$');

CREATE TABLE sites (
    id              ident PRIMARY KEY,
    name            text NOT NULL,
    timezone        text NOT NULL DEFAULT 'UTC',
    address         text,
    -- true when first seen on an MQTT topic rather than configured
    auto_registered boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE zones (
    site_id    ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    id         ident NOT NULL,
    name       text NOT NULL,
    kind       text,  -- pump room, lobby, car park, ...
    PRIMARY KEY (site_id, id)
);

CREATE TABLE device_types (
    id          ident PRIMARY KEY,
    name        text NOT NULL,
    -- {"pressure": {"unit": "MPa"}, ...}
    metrics     jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE devices (
    site_id           ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    id                ident NOT NULL,
    type_id           ident REFERENCES device_types,
    zone_id           ident,
    name              text NOT NULL,
    -- active: configured; unassigned: auto-registered from MQTT; retired
    status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'unassigned', 'retired')),
    attributes        jsonb NOT NULL DEFAULT '{}',
    -- per-device threshold overrides for rules: {"rule-id": {"threshold": 7.1}}
    overrides         jsonb NOT NULL DEFAULT '{}',
    last_seen         timestamptz,
    online            boolean,
    online_changed_at timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, id),
    FOREIGN KEY (site_id, zone_id) REFERENCES zones (site_id, id)
);
CREATE INDEX devices_type_idx ON devices (type_id);

CREATE TABLE guards (
    site_id    ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    id         ident NOT NULL,
    name       text NOT NULL,
    post       text,
    active     boolean NOT NULL DEFAULT true,
    PRIMARY KEY (site_id, id)
);

CREATE TABLE checkpoints (
    site_id    ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    id         ident NOT NULL,
    zone_id    ident,
    name       text NOT NULL,
    tag        text NOT NULL,            -- NFC UID or QR value printed at the point
    kind       text NOT NULL DEFAULT 'patrol' CHECK (kind IN ('patrol', 'equipment')),
    device_id  ident,                    -- equipment checkpoint: the device inspected here
    -- [{"item": "outlet pressure", "reading": "pressure", "min": 0.3, "max": 0.6, "unit": "MPa"},
    --  {"item": "no leaks", "reading": "no_leaks", "expect": true}]
    checklist  jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, id),
    UNIQUE (site_id, tag),
    FOREIGN KEY (site_id, zone_id) REFERENCES zones (site_id, id),
    FOREIGN KEY (site_id, device_id) REFERENCES devices (site_id, id)
);

-- Narrow telemetry: one row per (device, metric, time). Idempotent on that natural key.
CREATE TABLE telemetry (
    time       timestamptz NOT NULL,
    site_id    text NOT NULL,
    device_id  text NOT NULL,
    metric     text NOT NULL,
    value      double precision,  -- numbers and booleans (1/0)
    text_value text               -- anything not numeric
);
SELECT create_hypertable('telemetry', by_range('time', INTERVAL '1 day'));
CREATE UNIQUE INDEX telemetry_key ON telemetry (site_id, device_id, metric, time DESC);

CREATE TABLE device_status (
    time       timestamptz NOT NULL,
    site_id    text NOT NULL,
    device_id  text NOT NULL,
    status     text NOT NULL CHECK (status IN ('online', 'offline')),
    -- status: the device's own message; lwt: its Last Will; timeout: no data
    source     text NOT NULL DEFAULT 'status'
);
SELECT create_hypertable('device_status', by_range('time', INTERVAL '7 days'));
CREATE UNIQUE INDEX device_status_key ON device_status (site_id, device_id, time DESC, status);

CREATE TABLE scans (
    time          timestamptz NOT NULL,      -- when the guard scanned (handheld clock)
    scan_id       uuid NOT NULL,
    site_id       text NOT NULL,
    guard_id      text NOT NULL,
    tag           text NOT NULL,
    checkpoint_id text,                      -- null: unknown tag, kept and reported
    result        text NOT NULL DEFAULT 'ok' CHECK (result IN ('ok', 'abnormal')),
    readings      jsonb NOT NULL DEFAULT '{}',
    note          text,
    received_at   timestamptz NOT NULL DEFAULT now()
);
SELECT create_hypertable('scans', by_range('time', INTERVAL '7 days'));
CREATE UNIQUE INDEX scans_key ON scans (scan_id, time);
CREATE INDEX scans_site_guard_idx ON scans (site_id, guard_id, time DESC);
CREATE INDEX scans_site_checkpoint_idx ON scans (site_id, checkpoint_id, time DESC);

CREATE TABLE dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL DEFAULT 'mqtt',  -- mqtt, http
    topic       text NOT NULL,
    payload     bytea NOT NULL,
    reason      text NOT NULL
);
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at DESC);

-- Committed ingest batches for the rules and patrol workers, written in the same
-- transaction as the rows they describe (a transactional outbox): a worker takes rows
-- with FOR UPDATE SKIP LOCKED and deletes them in the transaction that acts on them,
-- so nothing is evaluated twice or missed across restarts.
CREATE TABLE ingest_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('telemetry', 'status', 'scans')),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- telemetry: [{"site","device","metric","time","value","text_value"}...]
    -- status:    [{"site","device","time","status","source"}...]
    -- scans:     [{"site","scan_id","time"}...]
    payload    jsonb NOT NULL
);
CREATE INDEX ingest_events_kind_idx ON ingest_events (kind, id);

CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL,
    token_hash   text NOT NULL UNIQUE,   -- sha256 of the token; the token itself is never stored
    role         text NOT NULL CHECK (role IN ('admin', 'supervisor', 'engineer', 'guard', 'viewer')),
    site_id      ident REFERENCES sites ON DELETE CASCADE,  -- null: every site
    guard_id     ident,                  -- a guard token may name the guard it belongs to
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
