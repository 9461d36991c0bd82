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

-- The job takes the oldest ready hours first.
CREATE INDEX rollup_pending_bucket ON rollup_pending (bucket);

-- The one exact read of aggregates per `width` bucket of a site's series (one device and/or
-- metric, or all: NULL) over [t_from, t_to), used by the API (ingest/readback.py) and the
-- dashboards: from the tier's rollups where they hold whole buckets and the hour is not
-- pending, from raw points for the ragged edges of the range and for pending hours (not
-- rolled up yet, or changed by late points). `tier` ('raw', '1m', '1h'; default: the coarsest
-- whose buckets add up to `width`) picks the table. SECURITY DEFINER: Grafana's read-only
-- role reads through it without rights on the tables behind it.
CREATE FUNCTION telemetry_rollup(p_site text, p_device text, p_metric text,
                                 t_from timestamptz, t_to timestamptz, width interval,
                                 tier text DEFAULT NULL)
RETURNS TABLE (device_id text, metric text, "time" timestamptz, min double precision,
               max double precision, avg double precision, count bigint,
               last double precision, last_text text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    secs numeric := extract(epoch FROM width);
    step interval;
    lo timestamptz := t_from;
    hi timestamptz := t_from;
    ids integer[];
    pend_ids integer[];
    pend_hours timestamptz[];
    pend_from timestamptz;
    pend_to timestamptz;
    raw text;
    parts text[];
BEGIN
    IF secs IS NULL OR secs <= 0 THEN
        RAISE EXCEPTION 'telemetry_rollup: width must be positive' USING ERRCODE = '22023';
    END IF;
    tier := coalesce(tier, CASE WHEN secs % 3600 = 0 THEN '1h'
                                WHEN secs % 60 = 0 THEN '1m' ELSE 'raw' END);
    step := CASE tier WHEN '1h' THEN INTERVAL '1 hour' WHEN '1m' THEN INTERVAL '1 minute' END;
    IF step IS NULL AND tier <> 'raw' THEN
        RAISE EXCEPTION 'telemetry_rollup: no tier %', tier USING ERRCODE = '22023';
    END IF;
    IF step IS NOT NULL THEN  -- the whole tier buckets inside the range, if any
        lo := time_bucket(step, t_from);
        IF lo < t_from THEN lo := lo + step; END IF;
        hi := time_bucket(step, t_to);
        IF lo >= hi THEN lo := t_from; hi := t_from; END IF;
    END IF;
    ids := ARRAY(SELECT id FROM series WHERE site_id = p_site
                   AND (p_device IS NULL OR series.device_id = p_device)
                   AND (p_metric IS NULL OR series.metric = p_metric));
    IF lo < hi THEN  -- hours of the rolled span still pending: read raw, not from the rollups
        SELECT array_agg(p.series_id), array_agg(p.bucket), min(p.bucket), max(p.bucket)
          INTO pend_ids, pend_hours, pend_from, pend_to
          FROM rollup_pending p
         WHERE p.series_id = ANY(ids) AND p.bucket >= time_bucket(INTERVAL '1 hour', lo)
           AND p.bucket < hi;
    END IF;
    -- Only the parts needed, each with constant time bounds: EXECUTE plans with the values
    -- known, so only the chunks of those spans are read.
    raw := 'SELECT t.series_id, time_bucket($6, t.time) AS b, t.value AS min, t.value AS max,'
        ' t.value AS sum, (t.value IS NOT NULL)::int AS nvalues, 1 AS count, t.value AS last,'
        ' t.text_value AS last_text, t.time AS last_time';
    parts := ARRAY[raw || ' FROM telemetry_points t WHERE t.series_id = ANY($1)'
                       ' AND t.time >= $2 AND t.time < $4',
                   raw || ' FROM telemetry_points t WHERE t.series_id = ANY($1)'
                       ' AND t.time >= greatest($5, $2) AND t.time < $3'];
    IF lo < hi THEN
        parts := parts || format(
            'SELECT r.series_id, time_bucket($6, r.bucket), r.min, r.max, r.sum, r.nvalues,'
            ' r.count, r.last, r.last_text, r.last_time FROM %I r'
            ' WHERE r.series_id = ANY($1) AND r.bucket >= $4 AND r.bucket < $5%s',
            CASE tier WHEN '1m' THEN 'telemetry_1m' ELSE 'telemetry_1h' END,
            CASE WHEN pend_ids IS NOT NULL THEN
                ' AND NOT EXISTS (SELECT 1 FROM unnest($7, $8) AS p(series_id, bucket)'
                ' WHERE p.series_id = r.series_id'
                ' AND p.bucket = time_bucket(INTERVAL ''1 hour'', r.bucket))' ELSE '' END);
    END IF;
    IF pend_ids IS NOT NULL THEN
        parts := parts || (raw || ' FROM unnest($7, $8) AS p(series_id, bucket)'
            ' JOIN telemetry_points t ON t.series_id = p.series_id'
            ' AND t.time >= p.bucket AND t.time < p.bucket + INTERVAL ''1 hour'''
            ' WHERE t.time >= greatest($9, $4)'
            ' AND t.time < least($10 + INTERVAL ''1 hour'', $5)');
    END IF;
    RETURN QUERY EXECUTE
        'SELECT s.device_id, s.metric, parts.b, min(parts.min), max(parts.max),'
        ' sum(parts.sum) / nullif(sum(parts.nvalues), 0), sum(parts.count)::bigint,'
        ' last(parts.last, parts.last_time), last(parts.last_text, parts.last_time)'
        ' FROM (' || array_to_string(parts, ' UNION ALL ') || ') parts'
        ' JOIN series s ON s.id = parts.series_id GROUP BY 1, 2, 3'
    USING ids, t_from, t_to, lo, hi, width, pend_ids, pend_hours, pend_from, pend_to;
END
$fn$;

-- Rows written through the telemetry view (migration 019's trigger) lock an existing pending
-- row as the ingest does (ingest/store.py), so the job never rolls an hour up without them.
CREATE OR REPLACE FUNCTION telemetry_insert() RETURNS trigger LANGUAGE plpgsql AS $$
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
    VALUES (sid, date_trunc('hour', NEW.time, 'UTC'))
    ON CONFLICT (series_id, bucket) DO UPDATE SET bucket = excluded.bucket WHERE false;
    RETURN NEW;
END $$;
