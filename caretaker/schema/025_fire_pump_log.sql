-- The fire-pump test log (issue 16, part 3; rules/fire_pumps.py): the `fire_pumps:` site-file
-- section, each pump's first reading and whether its history has settled, every start
-- derived from telemetry, and one verdict per pump, test and period — done, failed or
-- missed — with the work order a gap opened.

CREATE TABLE fire_pump_settings (
    site_id    ident PRIMARY KEY REFERENCES sites ON DELETE CASCADE,
    settings   jsonb NOT NULL,  -- the section as written (rules/fire_pumps.py FirePumpSpec)
    updated_at timestamptz NOT NULL
);

-- Each pump's first reading (periods are judged from the first whole one after it), and how
-- many readings it had between then and the end of the periods waiting to be judged, when
-- that count last changed: the periods are judged when it has held still for a while (a
-- backfill or a late upload still arriving changes it), so history arriving in any order is
-- judged whole.
CREATE TABLE fire_pump_scans (
    site_id       ident NOT NULL,
    device_id     ident NOT NULL,
    since         timestamptz NOT NULL,
    history_end   timestamptz,
    history_count bigint,
    seen_at       timestamptz,          -- when history_end or history_count last changed
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (site_id, device_id),
    FOREIGN KEY (site_id, device_id) REFERENCES devices (site_id, id) ON DELETE CASCADE
);

-- One row per start of a fire pump or jockey pump, ever: rescans cannot duplicate it.
CREATE TABLE fire_pump_runs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id          ident NOT NULL,
    device_id        ident NOT NULL,
    started_at       timestamptz NOT NULL,
    stopped_at       timestamptz NOT NULL,
    pressure_reached double precision,  -- MPa, the highest while running
    start_pressure   double precision,  -- MPa, just before it started
    stop_pressure    double precision,  -- MPa, just after it stopped
    flow_max         double precision,
    mode             text CHECK (mode IN ('auto', 'manual')),  -- null: not reported
    recorded_at      timestamptz NOT NULL,
    UNIQUE (site_id, device_id, started_at),
    FOREIGN KEY (site_id, device_id) REFERENCES devices (site_id, id) ON DELETE CASCADE
);

-- One verdict per pump, test and period, ever (any number of workers, any restart).
CREATE TABLE fire_pump_tests (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id       ident NOT NULL,
    device_id     ident NOT NULL,
    test          text NOT NULL CHECK (test IN ('weekly_auto', 'monthly_manual', 'jockey_daily')),
    period_start  timestamptz NOT NULL,  -- local midnight in the site's time zone
    period_end    timestamptz NOT NULL,
    status        text NOT NULL CHECK (status IN ('done', 'failed', 'missed')),
    run_id        bigint REFERENCES fire_pump_runs ON DELETE SET NULL,
    reason        text,                  -- why failed or missed
    details       jsonb NOT NULL DEFAULT '{}',  -- jockey: starts, start/stop pressure
    judged_at     timestamptz NOT NULL,
    work_order_id bigint REFERENCES work_orders ON DELETE SET NULL,
    UNIQUE (site_id, device_id, test, period_start),
    FOREIGN KEY (site_id, device_id) REFERENCES devices (site_id, id) ON DELETE CASCADE
);
CREATE INDEX fire_pump_tests_site_idx ON fire_pump_tests (site_id, period_start);
CREATE INDEX fire_pump_tests_gaps_idx ON fire_pump_tests (site_id, period_end)
    WHERE status <> 'done';
