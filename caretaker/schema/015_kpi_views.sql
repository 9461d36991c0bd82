-- Dashboards (issue 14): the KPI library's definitions (reports/kpis.py) as SQL functions, so
-- Grafana's KPI panels show the same numbers as the API and the weekly report. Each kpi_*
-- function reads one site over [p_start, p_end) as instants, read at p_now, and returns
-- (value, numerator, denominator) exactly as reports.kpis.Kpi carries them; kpi_values gives
-- all of them with their targets, kpi_period the same for local dates, kpi_weeks per ISO week
-- on the site's clock. tests/dashboards/test_kpi_sql.py holds them equal to kpis.compute.

-- The KPI target of a site (its `kpi_targets:` section, else the library's default).
CREATE FUNCTION kpi_target(p_site text, p_name text) RETURNS float8
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN t.targets ? p_name THEN (t.targets ->> p_name)::float8
                ELSE (SELECT d.v FROM (VALUES ('repair_timeliness', 0.99::float8),
                                              ('followup_rate', 0.3), ('satisfaction', 0.98),
                                              ('complaint_handling', 1.0),
                                              ('equipment_intact', 1.0),
                                              ('inspection_completion', 1.0)) d(n, v)
                       WHERE d.n = p_name) END
      FROM (SELECT (SELECT targets FROM kpi_targets WHERE site_id = p_site) AS targets) t
$$;

CREATE FUNCTION kpi_share(p_num float8, p_den float8,
                          OUT value float8, OUT numerator float8, OUT denominator float8)
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_den > 0 THEN p_num / p_den END, p_num, p_den
$$;

CREATE FUNCTION kpi_repair_timeliness(p_site text, p_start timestamptz, p_end timestamptz,
                                      p_now timestamptz, OUT value float8,
                                      OUT numerator float8, OUT denominator float8)
LANGUAGE sql STABLE AS $$
    SELECT (kpi_share(count(*) FILTER (WHERE done_at <= resolve_by), count(*))).*
      FROM (SELECT resolve_by, least(resolved_at, closed_at) AS done_at
              FROM work_orders
             WHERE site_id = p_site AND resolve_by >= p_start AND resolve_by < p_end
               AND state <> 'cancelled' AND category IN ('公区维修', '居家维修', '设备')) w
     WHERE done_at IS NOT NULL OR resolve_by <= p_now
$$;

CREATE FUNCTION kpi_response_timeliness(p_site text, p_start timestamptz, p_end timestamptz,
                                        p_now timestamptz, OUT value float8,
                                        OUT numerator float8, OUT denominator float8)
LANGUAGE sql STABLE AS $$
    SELECT (kpi_share(count(*) FILTER (WHERE answered_at <= respond_by), count(*))).*
      FROM (SELECT respond_by,
                   least(acknowledged_at, started_at, resolved_at, closed_at) AS answered_at
              FROM work_orders
             WHERE site_id = p_site AND respond_by >= p_start AND respond_by < p_end
               AND state <> 'cancelled') w
     WHERE answered_at IS NOT NULL OR respond_by <= p_now
$$;

CREATE FUNCTION kpi_mtta_seconds(p_site text, p_start timestamptz, p_end timestamptz,
                                 p_now timestamptz, OUT value float8, OUT numerator float8,
                                 OUT denominator float8)
LANGUAGE sql STABLE AS $$
    SELECT sum(s) / nullif(count(*), 0), coalesce(sum(s), 0), count(*)
      FROM (SELECT extract(epoch FROM acknowledged_at - opened_at)::float8 AS s
              FROM work_orders
             WHERE site_id = p_site AND acknowledged_at >= p_start
               AND acknowledged_at < p_end) w
$$;

CREATE FUNCTION kpi_mttr_seconds(p_site text, p_start timestamptz, p_end timestamptz,
                                 p_now timestamptz, OUT value float8, OUT numerator float8,
                                 OUT denominator float8)
LANGUAGE sql STABLE AS $$
    SELECT sum(s) / nullif(count(*), 0), coalesce(sum(s), 0), count(*)
      FROM (SELECT extract(epoch FROM resolved_at - opened_at)::float8 AS s
              FROM work_orders
             WHERE site_id = p_site AND resolved_at >= p_start AND resolved_at < p_end) w
$$;

CREATE FUNCTION kpi_followup_rate(p_site text, p_start timestamptz, p_end timestamptz,
                                  p_now timestamptz, OUT value float8, OUT numerator float8,
                                  OUT denominator float8)
LANGUAGE sql STABLE AS $$
    SELECT (kpi_share(count(*) FILTER (WHERE reached), count(*))).*
      FROM (SELECT EXISTS (SELECT 1 FROM follow_ups f WHERE f.work_order_id = w.id
                              AND f.outcome = 'reached' AND f.at <= p_now) AS reached
              FROM work_orders w
             WHERE w.site_id = p_site AND w.resolved_at >= p_start AND w.resolved_at < p_end
               AND w.source IN ('manual', 'complaint')
            UNION ALL
            SELECT EXISTS (SELECT 1 FROM follow_ups f WHERE f.complaint_id = c.id
                              AND f.outcome = 'reached' AND f.at <= p_now)
              FROM complaints c
             WHERE c.site_id = p_site
               AND coalesce(c.answered_at, c.closed_at) >= p_start
               AND coalesce(c.answered_at, c.closed_at) < p_end
               AND c.resolution IS DISTINCT FROM 'invalid') x
$$;

CREATE FUNCTION kpi_satisfaction(p_site text, p_start timestamptz, p_end timestamptz,
                                 p_now timestamptz, OUT value float8, OUT numerator float8,
                                 OUT denominator float8)
LANGUAGE sql STABLE AS $$
    SELECT (kpi_share(count(*) FILTER (WHERE satisfaction >= 4), count(*))).*
      FROM follow_ups
     WHERE site_id = p_site AND at >= p_start AND at < p_end AND outcome = 'reached'
$$;

CREATE FUNCTION kpi_complaint_handling(p_site text, p_start timestamptz, p_end timestamptz,
                                       p_now timestamptz, OUT value float8,
                                       OUT numerator float8, OUT denominator float8)
LANGUAGE sql STABLE AS $$
    SELECT (kpi_share(count(*) FILTER (WHERE resolution = 'handled'), count(*))).*
      FROM complaints
     WHERE site_id = p_site AND answer_by >= p_start AND answer_by < p_end
       AND resolution IS DISTINCT FROM 'invalid'
       AND (answer_by <= p_now OR state = 'closed')
$$;

-- At min(end, now): devices in service with no open major+ ticket and whose last status
-- change before then is not `offline` (the library's point-in-time value).
CREATE FUNCTION kpi_equipment_intact(p_site text, p_start timestamptz, p_end timestamptz,
                                     p_now timestamptz, OUT value float8,
                                     OUT numerator float8, OUT denominator float8)
LANGUAGE sql STABLE AS $$
    WITH pt AS (SELECT greatest(p_start, least(p_end, p_now)) AS t),
         dev AS (
        SELECT d.id,
               EXISTS (SELECT 1 FROM work_orders w, pt
                        WHERE w.site_id = p_site AND w.device_id = d.id
                          AND w.severity IN ('critical', 'major') AND w.opened_at < pt.t
                          AND coalesce(least(w.resolved_at, w.closed_at, w.cancelled_at),
                                       'infinity') > pt.t)
               OR coalesce((SELECT s.status = 'offline' FROM device_status s, pt
                             WHERE s.site_id = p_site AND s.device_id = d.id AND s.time < pt.t
                             ORDER BY s.time DESC, s.status DESC LIMIT 1), false) AS bad
          FROM devices d WHERE d.site_id = p_site AND d.status = 'active')
    SELECT CASE WHEN count(*) > 0 AND (SELECT t FROM pt) > p_start
                THEN count(*) FILTER (WHERE NOT bad)::float8 / count(*) END,
           CASE WHEN (SELECT t FROM pt) > p_start
                THEN count(*) FILTER (WHERE NOT bad) ELSE 0 END,
           count(*)
      FROM dev
$$;

CREATE FUNCTION kpi_patrol_completion(p_site text, p_start timestamptz, p_end timestamptz,
                                      p_now timestamptz, OUT value float8,
                                      OUT numerator float8, OUT denominator float8)
LANGUAGE sql STABLE AS $$
    SELECT (kpi_share(count(*) FILTER (WHERE v.timing IN ('early', 'on_time')), count(*))).*
      FROM patrol_runs r JOIN patrol_visits v ON v.run_id = r.id
     WHERE r.site_id = p_site AND r.planned_start >= p_start AND r.planned_start < p_end
       AND v.timing <> 'pending' AND NOT v.equipment
$$;

CREATE FUNCTION kpi_inspection_completion(p_site text, p_start timestamptz, p_end timestamptz,
                                          p_now timestamptz, OUT value float8,
                                          OUT numerator float8, OUT denominator float8)
LANGUAGE sql STABLE AS $$
    SELECT (kpi_share(count(*) FILTER (WHERE missed = 0), count(*))).*
      FROM (SELECT count(*) FILTER (WHERE v.timing = 'missed') AS missed,
                   count(*) FILTER (WHERE v.timing = 'pending') AS pending
              FROM patrol_runs r JOIN patrol_visits v ON v.run_id = r.id AND v.equipment
             WHERE r.site_id = p_site AND r.planned_start >= p_start
               AND r.planned_start < p_end
             GROUP BY r.id) rounds
     WHERE pending = 0
$$;

CREATE FUNCTION kpi_backlog(p_site text, p_start timestamptz, p_end timestamptz,
                            p_now timestamptz, OUT value float8, OUT numerator float8,
                            OUT denominator float8)
LANGUAGE sql STABLE AS $$
    SELECT count(*) FILTER (WHERE still_open)::float8,
           count(*) FILTER (WHERE still_open)::float8, count(*)::float8
      FROM (SELECT coalesce(least(resolved_at, closed_at, cancelled_at) > pt.t, true)
                   AS still_open
              FROM work_orders,
                   (SELECT greatest(p_start, least(p_end, p_now)) AS t) pt
             WHERE site_id = p_site AND opened_at < pt.t
               AND (state IN ('open', 'acknowledged', 'in_progress')
                    OR least(resolved_at, closed_at, cancelled_at) > p_start)) w
$$;

CREATE FUNCTION kpi_repeat_faults(p_site text, p_start timestamptz, p_end timestamptz,
                                  p_now timestamptz, OUT value float8, OUT numerator float8,
                                  OUT denominator float8)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN count(*) > 0 THEN count(*) FILTER (WHERE repeat) END,
           count(*) FILTER (WHERE repeat), count(*)
      FROM (SELECT w.repeat_of IS NOT NULL OR EXISTS (
                       SELECT 1 FROM work_order_refs e WHERE e.work_order_id = r.work_order_id
                          AND (e.at, e.source, e.source_ref) < (r.at, r.source, r.source_ref))
                   AS repeat
              FROM work_order_refs r JOIN work_orders w ON w.id = r.work_order_id
             WHERE r.at >= p_start AND r.at < p_end AND r.source IN ('alarm', 'inspection')
               AND w.site_id = p_site) f
$$;

CREATE FUNCTION kpi_mtbf_seconds(p_site text, p_start timestamptz, p_end timestamptz,
                                 p_now timestamptz, OUT value float8, OUT numerator float8,
                                 OUT denominator float8)
LANGUAGE sql STABLE AS $$
    WITH pt AS (SELECT greatest(p_start, least(p_end, p_now)) AS t),
         dev AS (SELECT id FROM devices WHERE site_id = p_site AND status = 'active'),
         f AS (SELECT count(*) AS n
                 FROM work_order_refs r JOIN work_orders w ON w.id = r.work_order_id, pt
                WHERE r.at >= p_start AND r.at < pt.t AND r.source IN ('alarm', 'inspection')
                  AND w.site_id = p_site AND w.device_id IN (SELECT id FROM dev))
    SELECT (kpi_share((SELECT count(*) FROM dev)
                      * extract(epoch FROM (SELECT t FROM pt) - p_start)::float8,
                      (SELECT n FROM f))).*
$$;

-- Every KPI of a site over [p_start, p_end) read at p_now, with its target, in NAMES order.
CREATE FUNCTION kpi_values(p_site text, p_start timestamptz, p_end timestamptz,
                           p_now timestamptz DEFAULT now())
RETURNS TABLE (name text, value float8, numerator float8, denominator float8, target float8)
LANGUAGE sql STABLE AS $$
    SELECT k.name, v.value, v.numerator, v.denominator, kpi_target(p_site, k.name)
      FROM (VALUES (1, 'repair_timeliness'), (2, 'response_timeliness'), (3, 'mtta_seconds'),
                   (4, 'mttr_seconds'), (5, 'followup_rate'), (6, 'satisfaction'),
                   (7, 'complaint_handling'), (8, 'equipment_intact'),
                   (9, 'patrol_completion'), (10, 'inspection_completion'), (11, 'backlog'),
                   (12, 'repeat_faults'), (13, 'mtbf_seconds')) k(i, name)
     CROSS JOIN LATERAL (
        SELECT * FROM kpi_repair_timeliness(p_site, p_start, p_end, p_now) WHERE k.i = 1
        UNION ALL SELECT * FROM kpi_response_timeliness(p_site, p_start, p_end, p_now)
                   WHERE k.i = 2
        UNION ALL SELECT * FROM kpi_mtta_seconds(p_site, p_start, p_end, p_now) WHERE k.i = 3
        UNION ALL SELECT * FROM kpi_mttr_seconds(p_site, p_start, p_end, p_now) WHERE k.i = 4
        UNION ALL SELECT * FROM kpi_followup_rate(p_site, p_start, p_end, p_now) WHERE k.i = 5
        UNION ALL SELECT * FROM kpi_satisfaction(p_site, p_start, p_end, p_now) WHERE k.i = 6
        UNION ALL SELECT * FROM kpi_complaint_handling(p_site, p_start, p_end, p_now)
                   WHERE k.i = 7
        UNION ALL SELECT * FROM kpi_equipment_intact(p_site, p_start, p_end, p_now)
                   WHERE k.i = 8
        UNION ALL SELECT * FROM kpi_patrol_completion(p_site, p_start, p_end, p_now)
                   WHERE k.i = 9
        UNION ALL SELECT * FROM kpi_inspection_completion(p_site, p_start, p_end, p_now)
                   WHERE k.i = 10
        UNION ALL SELECT * FROM kpi_backlog(p_site, p_start, p_end, p_now) WHERE k.i = 11
        UNION ALL SELECT * FROM kpi_repeat_faults(p_site, p_start, p_end, p_now) WHERE k.i = 12
        UNION ALL SELECT * FROM kpi_mtbf_seconds(p_site, p_start, p_end, p_now) WHERE k.i = 13
     ) v
     ORDER BY k.i
$$;

-- The same over local dates [p_from, p_to) on the site's clock (kpis.local_period).
CREATE FUNCTION kpi_period(p_site text, p_from date, p_to date, p_now timestamptz DEFAULT now())
RETURNS TABLE (name text, value float8, numerator float8, denominator float8, target float8)
LANGUAGE sql STABLE AS $$
    SELECT k.* FROM sites s
     CROSS JOIN LATERAL kpi_values(s.id, p_from::timestamp AT TIME ZONE s.timezone,
                                   p_to::timestamp AT TIME ZONE s.timezone, p_now) k
     WHERE s.id = p_site
$$;

-- Per ISO week (Monday 00:00 on the site's clock) touching [p_from, p_to), at most 60 weeks
-- (the latest): `time` is the week's start, for Grafana's time series.
CREATE FUNCTION kpi_weeks(p_site text, p_from timestamptz, p_to timestamptz,
                          p_now timestamptz DEFAULT now())
RETURNS TABLE ("time" timestamptz, name text, value float8, numerator float8,
               denominator float8, target float8)
LANGUAGE sql STABLE AS $$
    SELECT w.monday::timestamp AT TIME ZONE s.timezone, k.*
      FROM sites s
     CROSS JOIN LATERAL (
        SELECT g::date AS monday
          FROM generate_series(
                   greatest(date_trunc('week', (p_from AT TIME ZONE s.timezone)),
                            date_trunc('week', (p_to AT TIME ZONE s.timezone))
                                - interval '59 weeks'),
                   (p_to AT TIME ZONE s.timezone) - interval '1 microsecond',
                   interval '1 week') g) w
     CROSS JOIN LATERAL kpi_values(s.id, w.monday::timestamp AT TIME ZONE s.timezone,
                                   (w.monday + 7)::timestamp AT TIME ZONE s.timezone,
                                   p_now) k
     WHERE s.id = p_site
     ORDER BY 1, k.name
$$;
