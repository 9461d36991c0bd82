-- Compact telemetry: readings keyed by a small integer series id instead of repeating the
-- site, device and metric as text in every row and in its unique index (issue 15).
-- The old `telemetry` table becomes a view of the same name and columns, so readers are
-- unchanged; the ingest writes telemetry_points, latest_readings and rollup_pending in one
-- transaction (ingest/store.py).

-- One row per (site, device, metric) ever seen; created by the ingest on first sight.
CREATE TABLE series (
    id        integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id   text NOT NULL,
    device_id text NOT NULL,
    metric    text NOT NULL,
    UNIQUE (site_id, device_id, metric)
);

-- One row per (series, time); idempotent on that key (redelivery writes nothing twice).
CREATE TABLE telemetry_points (
    series_id  integer NOT NULL,
    time       timestamptz NOT NULL,
    value      double precision,  -- numbers and booleans (1/0)
    text_value text               -- anything not numeric
);
-- No time-only index (create_hypertable's default): every reader filters by series, chunks
-- are excluded by time, and that index alone cost 11 bytes a point (bench/ingest_bench.py).
SELECT create_hypertable('telemetry_points', by_range('time', INTERVAL '1 day'),
                         create_default_indexes => false);
CREATE UNIQUE INDEX telemetry_points_key ON telemetry_points (series_id, time DESC);

-- The newest reading of each series, moved only forward (a late reading does not replace it).
-- Every batch updates its series' rows: half-empty pages keep those updates HOT (no index
-- entry, pruned in place).
CREATE TABLE latest_readings (
    series_id  integer PRIMARY KEY,
    time       timestamptz NOT NULL,
    value      double precision,
    text_value text
) WITH (fillfactor = 50);

-- Hours (UTC) of series that got new points and are not rolled up yet; the rollup job
-- consumes (deletes) them. Written in the same transaction as the points.
CREATE TABLE rollup_pending (
    series_id integer NOT NULL,
    bucket    timestamptz NOT NULL,
    PRIMARY KEY (series_id, bucket)
);

-- Move what is there (chunk by chunk is not needed at the sizes main has seen).
INSERT INTO series (site_id, device_id, metric)
SELECT DISTINCT site_id, device_id, metric FROM telemetry ORDER BY 1, 2, 3;

INSERT INTO telemetry_points (series_id, time, value, text_value)
SELECT s.id, t.time, t.value, t.text_value
FROM telemetry t JOIN series s USING (site_id, device_id, metric);

INSERT INTO latest_readings (series_id, time, value, text_value)
SELECT DISTINCT ON (series_id) series_id, time, value, text_value
FROM telemetry_points ORDER BY series_id, time DESC;

INSERT INTO rollup_pending (series_id, bucket)
SELECT DISTINCT series_id, date_trunc('hour', time, 'UTC') FROM telemetry_points;

DROP TABLE telemetry;

-- Every reader of the old table reads this: filters on site/device/metric resolve the series
-- through its unique index, then read telemetry_points by (series_id, time).
CREATE VIEW telemetry AS
SELECT p.time, s.site_id, s.device_id, s.metric, p.value, p.text_value
FROM telemetry_points p JOIN series s ON s.id = p.series_id;

-- INSERT and COPY into the view, a row at a time (tests, one-off fixes): the same bookkeeping
-- as the ingest's bulk path. An existing (series, time) is left as it is.
CREATE FUNCTION telemetry_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sid integer;
    added integer;
BEGIN
    SELECT id INTO sid FROM series
    WHERE site_id = NEW.site_id AND device_id = NEW.device_id AND metric = NEW.metric;
    IF sid IS NULL THEN
        INSERT INTO series (site_id, device_id, metric)
        VALUES (NEW.site_id, NEW.device_id, NEW.metric) ON CONFLICT DO NOTHING
        RETURNING id INTO sid;
        IF sid IS NULL THEN  -- another transaction created it meanwhile
            SELECT id INTO sid FROM series
            WHERE site_id = NEW.site_id AND device_id = NEW.device_id AND metric = NEW.metric;
        END IF;
    END IF;
    INSERT INTO telemetry_points (series_id, time, value, text_value)
    VALUES (sid, NEW.time, NEW.value, NEW.text_value) ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS added = ROW_COUNT;
    IF added = 0 THEN
        RETURN NULL;
    END IF;
    INSERT INTO latest_readings AS l (series_id, time, value, text_value)
    VALUES (sid, NEW.time, NEW.value, NEW.text_value)
    ON CONFLICT (series_id) DO UPDATE SET
        time = excluded.time, value = excluded.value, text_value = excluded.text_value
    WHERE l.time < excluded.time;
    INSERT INTO rollup_pending (series_id, bucket)
    VALUES (sid, date_trunc('hour', NEW.time, 'UTC')) ON CONFLICT DO NOTHING;
    RETURN NEW;
END $$;

CREATE TRIGGER telemetry_insert INSTEAD OF INSERT ON telemetry
    FOR EACH ROW EXECUTE FUNCTION telemetry_insert();

-- Keyset pages of a site's scans and status changes, newest first (GET /scans,
-- GET /device-status): an index range however deep the page.
CREATE INDEX scans_site_time_idx ON scans (site_id, time DESC, scan_id);
CREATE INDEX device_status_site_time_idx ON device_status (site_id, time DESC);

-- Chunks of telemetry_points whose index was rebuilt once they stopped being written
-- (caretaker/retention.py compact_telemetry): points arrive in every series' range at once,
-- so the index pages split half-full while a chunk is written; rebuilt, they are full.
CREATE TABLE compacted_chunks (
    chunk        text PRIMARY KEY,  -- schema-qualified chunk name
    compacted_at timestamptz NOT NULL DEFAULT now()
);
