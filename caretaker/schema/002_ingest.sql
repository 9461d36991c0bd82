-- Counters of each ingest worker, upserted about once a second, read by the API's /metrics.
CREATE TABLE ingest_stats (
    worker             text PRIMARY KEY,           -- the worker's MQTT client id
    host               text NOT NULL,
    pid                integer NOT NULL,
    messages           bigint NOT NULL DEFAULT 0,  -- messages received and committed
    rows_written       bigint NOT NULL DEFAULT 0,  -- rows newly inserted (telemetry, status, scans)
    dead_letters       bigint NOT NULL DEFAULT 0,
    batches            bigint NOT NULL DEFAULT 0,
    devices_registered bigint NOT NULL DEFAULT 0,
    db_errors          bigint NOT NULL DEFAULT 0,  -- failed write attempts (database unreachable)
    -- histograms: cumulative counts per upper bound (bounds in ingest/metrics.py), and sums
    batch_buckets      bigint[] NOT NULL DEFAULT '{}',
    batch_seconds_sum  double precision NOT NULL DEFAULT 0,
    lag_buckets        bigint[] NOT NULL DEFAULT '{}',
    lag_seconds_sum    double precision NOT NULL DEFAULT 0,
    lag_count          bigint NOT NULL DEFAULT 0,
    backlog            integer NOT NULL DEFAULT 0, -- messages received, not yet committed
    started_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
