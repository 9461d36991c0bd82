-- Early warning (issue 16, part 1): the site's forecast settings (site file `forecast:`) and
-- the latest estimate per device and condition, with what was said about it, so the job can
-- be stopped and restarted without opening a second ticket or forgetting one.

CREATE TABLE forecast_settings (
    site_id    ident PRIMARY KEY REFERENCES sites ON DELETE CASCADE,
    spec       jsonb NOT NULL,  -- only what the site file wrote; defaults fill the rest
    updated_at timestamptz NOT NULL
);

CREATE TABLE forecasts (
    site_id       ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    device_id     ident NOT NULL,
    rule_id       ident NOT NULL,
    metric        text NOT NULL,
    op            text NOT NULL,
    threshold     double precision NOT NULL,
    level         text NOT NULL,  -- the severity level of the rule forecast
    -- idle: nothing said; warned: a live preventive ticket says when; alarm: the real alarm
    -- fired; handled: people ended the ticket while the forecast still warned
    state         text NOT NULL DEFAULT 'idle'
                  CHECK (state IN ('idle', 'warned', 'alarm', 'handled')),
    expected_at   timestamptz,  -- the latest estimate (null: no crossing foreseen)
    earliest_at   timestamptz,
    latest_at     timestamptz,
    confidence    double precision,  -- probability of a crossing within the horizon
    slope_per_day double precision,
    points        integer,          -- hourly values the estimate used
    noted_expected_at timestamptz,  -- the estimate the ticket last said
    noted_at      timestamptz,      -- when it said it
    work_order_id bigint REFERENCES work_orders ON DELETE SET NULL,
    generation    integer NOT NULL DEFAULT 0,  -- tickets opened so far (their source_ref's #n)
    checked_at    timestamptz NOT NULL,
    changed_at    timestamptz NOT NULL,  -- when the state last changed
    PRIMARY KEY (site_id, device_id, rule_id)
);
CREATE INDEX forecasts_checked_idx ON forecasts (checked_at);
