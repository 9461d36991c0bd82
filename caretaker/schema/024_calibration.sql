-- People against sensors (issue 16, part 2): which checklist answers measure what a device's
-- sensor measures (the site file's `calibration:` section), and every comparison made of a
-- technician's reading with the sensor's value at that time.

-- A checklist answer (`reading` key of an equipment checkpoint's checklist) that reads the
-- same quantity as `metric` of `device`. tolerance: absolute (the metric's unit) when
-- tolerance_pct is null, else a share of the sensor's value (in %).
CREATE TABLE calibration_links (
    site_id       ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    checkpoint_id ident NOT NULL,
    reading       text NOT NULL,
    device_id     ident NOT NULL,
    metric        text NOT NULL,
    tolerance     double precision NOT NULL CHECK (tolerance >= 0),
    tolerance_pct boolean NOT NULL DEFAULT false,
    repeat        int NOT NULL CHECK (repeat >= 1),
    within        interval NOT NULL,
    severity      text NOT NULL,
    PRIMARY KEY (site_id, checkpoint_id, reading),
    FOREIGN KEY (site_id, checkpoint_id) REFERENCES checkpoints (site_id, id) ON DELETE CASCADE
);

-- One comparison per scan and checklist answer. outcome: agreed (within tolerance),
-- disagreed, or no_sensor_value (no reading of the metric within `within` of the scan: it
-- neither agrees nor disagrees, and does not break a run of disagreements).
CREATE TABLE calibration_checks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id       ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    checkpoint_id ident NOT NULL,
    reading       text NOT NULL,
    device_id     ident NOT NULL,
    metric        text NOT NULL,
    guard_id      text NOT NULL,
    scan_id       uuid NOT NULL,
    scan_time     timestamptz NOT NULL,
    manual_value  double precision NOT NULL,
    sensor_value  double precision,
    sensor_time   timestamptz,
    difference    double precision,          -- manual - sensor
    allowed       double precision,          -- the tolerance applied, in the metric's unit
    outcome       text NOT NULL CHECK (outcome IN ('agreed', 'disagreed', 'no_sensor_value')),
    agreed        boolean GENERATED ALWAYS AS (CASE outcome WHEN 'agreed' THEN true
                                               WHEN 'disagreed' THEN false END) STORED,
    -- consecutive disagreements up to and including this check (0 unless disagreed)
    streak        int NOT NULL DEFAULT 0,
    -- this check asks for a calibration ticket (the Nth disagreement, or later ones while one
    -- is live); the ticket it opened or was noted on (null while pending: the clock retries)
    wants_ticket  boolean NOT NULL DEFAULT false,
    work_order_id bigint,
    checked_at    timestamptz NOT NULL,
    UNIQUE (scan_id, checkpoint_id, reading)
);
CREATE INDEX calibration_checks_series_idx
    ON calibration_checks (site_id, device_id, metric, scan_time DESC);
CREATE INDEX calibration_checks_site_idx ON calibration_checks (site_id, scan_time DESC);
CREATE INDEX calibration_checks_pending_idx ON calibration_checks (id)
    WHERE wants_ticket AND work_order_id IS NULL;
