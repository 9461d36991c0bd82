-- Rollups (issue 15): per series, 1-minute and 1-hour buckets kept by Caretaker's own job
-- (rules/rollups.py), since TimescaleDB's Apache edition has no continuous aggregates.
-- Each row aggregates the raw points of its bucket: min, max and sum of the numeric values
-- (avg = sum / nvalues, so buckets combine exactly into wider ones), how many numeric values
-- and points, and the newest point's value, text and time (`last`). The job fills them from
-- rollup_pending (migration 019): one hour of one series at a time, recomputed from raw.
CREATE TABLE telemetry_1m (
    series_id integer NOT NULL,
    bucket    timestamptz NOT NULL,
    min       double precision,
    max       double precision,
    sum       double precision,
    nvalues   integer NOT NULL,
    count     integer NOT NULL,
    last      double precision,
    last_text text,
    last_time timestamptz NOT NULL,
    PRIMARY KEY (series_id, bucket)
);
-- ~1440 rows per series a day: a day a chunk keeps a chunk's index in memory at 2,000+ series
SELECT create_hypertable('telemetry_1m', by_range('bucket', INTERVAL '1 day'),
                         create_default_indexes => false);

CREATE TABLE telemetry_1h (LIKE telemetry_1m INCLUDING ALL);
-- 24 rows per series a day: a month a chunk
SELECT create_hypertable('telemetry_1h', by_range('bucket', INTERVAL '30 days'),
                         create_default_indexes => false);

-- History already stored before this migration is rolled up by the job like late data.
INSERT INTO rollup_pending (series_id, bucket)
SELECT DISTINCT series_id, time_bucket(INTERVAL '1 hour', time) FROM telemetry_points
ON CONFLICT DO NOTHING;

-- The job takes the oldest ready hours first.
CREATE INDEX rollup_pending_bucket ON rollup_pending (bucket);
