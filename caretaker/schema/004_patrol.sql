-- Patrol and inspection: routes, schedules, the runs the clock makes of them, each
-- expected visit and its classification, inspection gaps and equipment findings.

CREATE TABLE routes (
    site_id      ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    id           ident NOT NULL,
    name         text NOT NULL,
    -- the route as given (rules/patrol/config.py documents the shape), durations in text
    definition   jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, id)
);

CREATE TABLE schedules (
    site_id            ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    id                 ident NOT NULL,
    route_id           ident NOT NULL,
    guard_id           ident,
    post               text,
    definition         jsonb NOT NULL,
    enabled            boolean NOT NULL DEFAULT true,
    -- runs exist for every planned start before this instant
    materialized_until timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, id),
    FOREIGN KEY (site_id, route_id) REFERENCES routes (site_id, id)
);

-- One planned walk of a route. Kept when its schedule changes or goes (history).
CREATE TABLE patrol_runs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id        ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    schedule_id    ident NOT NULL,
    route_id       ident NOT NULL,
    guard_id       ident,
    post           text,
    planned_start  timestamptz NOT NULL,
    start_deadline timestamptz NOT NULL,
    planned_end    timestamptz NOT NULL,   -- the last visit's window end
    ordered        boolean NOT NULL,
    min_duration   interval NOT NULL,
    lone_worker    interval,
    status         text NOT NULL DEFAULT 'scheduled'
                   CHECK (status IN ('scheduled', 'in_progress', 'complete', 'incomplete', 'missed')),
    flags          text[] NOT NULL DEFAULT '{}',
    started_at     timestamptz,
    finished_at    timestamptz,
    final          boolean NOT NULL DEFAULT false,
    -- when the clock must look at this run again (a window closes); null: nothing pending
    next_check_at  timestamptz,
    checked_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, schedule_id, planned_start)
);
CREATE INDEX patrol_runs_check_idx ON patrol_runs (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX patrol_runs_site_start_idx ON patrol_runs (site_id, planned_start);
CREATE INDEX patrol_runs_guard_idx ON patrol_runs (site_id, guard_id, planned_start);

CREATE TABLE patrol_visits (
    run_id        bigint NOT NULL REFERENCES patrol_runs ON DELETE CASCADE,
    seq           int NOT NULL,
    site_id       ident NOT NULL,
    checkpoint_id ident NOT NULL,
    equipment     boolean NOT NULL DEFAULT false,
    due_at        timestamptz NOT NULL,
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    match_from    timestamptz NOT NULL,
    match_until   timestamptz NOT NULL,
    scan_id       uuid,
    scan_time     timestamptz,
    timing        text NOT NULL DEFAULT 'pending'
                  CHECK (timing IN ('pending', 'early', 'on_time', 'late', 'missed')),
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'early', 'on_time', 'late', 'missed', 'out_of_order')),
    PRIMARY KEY (run_id, seq),
    UNIQUE (scan_id)
);
CREATE INDEX patrol_visits_match_idx ON patrol_visits (site_id, checkpoint_id, match_from, match_until)
    WHERE scan_id IS NULL;

-- What the patrol engine made of each scan (exactly one row per scan).
CREATE TABLE scan_checks (
    scan_id       uuid PRIMARY KEY,
    scan_time     timestamptz NOT NULL,
    site_id       text NOT NULL,
    guard_id      text NOT NULL,
    tag           text NOT NULL,
    checkpoint_id text,
    -- matched: counted for a visit; repeat: same tag, same guard within the repeat window
    -- (suspicious, not counted); unknown_tag: no checkpoint has this tag; unscheduled: no run
    disposition   text NOT NULL CHECK (disposition IN ('matched', 'repeat', 'unknown_tag', 'unscheduled')),
    suspicious    boolean NOT NULL DEFAULT false,
    run_id        bigint REFERENCES patrol_runs ON DELETE SET NULL,
    seq           int,
    checked_at    timestamptz NOT NULL
);
CREATE INDEX scan_checks_site_idx ON scan_checks (site_id, disposition, scan_time DESC);

CREATE TABLE inspection_gaps (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id         ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    route_id        ident NOT NULL,
    schedule_id     ident NOT NULL,
    run_id          bigint NOT NULL REFERENCES patrol_runs ON DELETE CASCADE,
    seq             int,
    checkpoint_id   ident,
    guard_id        ident,
    post            text,
    kind            text NOT NULL
                    CHECK (kind IN ('missed_checkpoint', 'overdue_inspection', 'missed_run', 'lone_worker')),
    window_start    timestamptz NOT NULL,
    window_end      timestamptz NOT NULL,
    detected_at     timestamptz NOT NULL,
    -- open; resolved (a scan arrived: resolution late, or synced when it was on time but
    -- reached us after the gap); acknowledged by a supervisor
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    resolution      text CHECK (resolution IN ('late', 'synced')),
    resolved_at     timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by text,
    note            text,
    -- one gap per run, kind, visit and window: restarts and parallel workers cannot duplicate
    UNIQUE NULLS NOT DISTINCT (run_id, kind, seq, window_start)
);
CREATE INDEX inspection_gaps_site_idx ON inspection_gaps (site_id, detected_at DESC);
CREATE INDEX inspection_gaps_open_idx ON inspection_gaps (site_id) WHERE status = 'open';

-- An abnormal answer at an equipment checkpoint; becomes a fault work order.
CREATE TABLE inspection_findings (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id       ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    checkpoint_id ident NOT NULL,
    device_id     ident,
    guard_id      text NOT NULL,
    scan_id       uuid NOT NULL UNIQUE,
    scan_time     timestamptz NOT NULL,
    problems      jsonb NOT NULL,      -- [{"item", "reason", ...}]
    note          text,
    work_order_id bigint,               -- null until a work order is opened for it
    created_at    timestamptz NOT NULL
);
CREATE INDEX inspection_findings_pending_idx ON inspection_findings (id) WHERE work_order_id IS NULL;
