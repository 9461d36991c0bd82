-- Reports (issue 11): the `reports:` site-file section, the weekly inspection reports with
-- their history, and the shift handover sheets (交接班) with their two signatures.

CREATE TABLE report_settings (
    site_id    ident PRIMARY KEY REFERENCES sites ON DELETE CASCADE,
    settings   jsonb NOT NULL,  -- the section as written (reports/settings.py has the shape)
    updated_at timestamptz NOT NULL
);

-- One stored report per site, kind and period, ever: any number of workers racing, or a
-- restart, cannot produce it twice.
CREATE TABLE reports (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id      ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('weekly')),
    period       text NOT NULL,         -- '2026-W48'
    period_start timestamptz NOT NULL,  -- Monday 00:00 in the site's time zone
    period_end   timestamptz NOT NULL,  -- the next Monday 00:00
    language     text NOT NULL CHECK (language IN ('zh-CN', 'en')),
    kpis         jsonb NOT NULL,        -- the KPI values the report shows
    html         bytea NOT NULL,
    pdf          bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    created_by   text NOT NULL,         -- 'schedule', or who asked for it
    UNIQUE (site_id, kind, period)
);
CREATE INDEX reports_site_idx ON reports (site_id, period_start DESC);

-- One sheet per site and shift change; written from the data when the shift changes.
CREATE TABLE handovers (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id              ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    shift_start          timestamptz NOT NULL,  -- the outgoing shift's start
    shift_end            timestamptz NOT NULL,  -- the change: the incoming shift's start
    language             text NOT NULL CHECK (language IN ('zh-CN', 'en')),
    content              jsonb NOT NULL,        -- what the sheet lists (reports/handover.py)
    created_at           timestamptz NOT NULL,
    sign_by              timestamptz NOT NULL,  -- unsigned after this: the supervisor hears
    outgoing_by          text,
    outgoing_token       bigint,
    outgoing_at          timestamptz,
    outgoing_note        text,
    incoming_by          text,
    incoming_token       bigint,
    incoming_at          timestamptz,
    incoming_note        text,
    unsigned_notified_at timestamptz,
    UNIQUE (site_id, shift_end),
    CHECK ((outgoing_by IS NULL) = (outgoing_at IS NULL)),
    CHECK ((incoming_by IS NULL) = (incoming_at IS NULL)),
    -- one person cannot sign both sides
    CHECK (outgoing_by IS NULL OR incoming_by IS NULL OR outgoing_by <> incoming_by)
);
CREATE INDEX handovers_site_idx ON handovers (site_id, shift_end DESC);
CREATE INDEX handovers_unsigned_idx ON handovers (sign_by)
    WHERE unsigned_notified_at IS NULL AND (outgoing_at IS NULL OR incoming_at IS NULL);
