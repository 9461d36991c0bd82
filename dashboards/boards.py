"""The five dashboards (fleet overview, device detail, alarms and work orders, patrol
compliance, KPIs), built with grafana-foundation-sdk; stable uids so a second push updates.

Every panel reads the database through SQL with Grafana's macros and the dashboard's `$site`
(and `$device`, `$metric`) variables; KPI panels call the KPI library's SQL functions
(migration 015), so they show the numbers the API and the weekly report show. Telemetry panels
read through `rollup(...)`: the raw points, 1-minute or 1-hour rollups as the time range's
$__interval calls for (migration 020's telemetry_rollup), so a month never scans raw points.
Residents' names and phones are never selected (the reader role cannot read them anyway).
"""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders.dashboard import (
    AnnotationQuery,
    Dashboard,
    QueryVariable,
    ThresholdsConfig,
)
from grafana_foundation_sdk.models.dashboard import (
    Dashboard as DashboardModel,
)
from grafana_foundation_sdk.models.dashboard import (
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)

from dashboards.sqlquery import DATASOURCE, Sql

TAGS = ["caretaker"]
LIVE = "('open', 'acknowledged', 'in_progress')"  # work-order states still to be done
LOWER_IS_BETTER = ("mtta_seconds", "mttr_seconds", "backlog", "repeat_faults")
RATIOS = ("repair_timeliness", "response_timeliness", "followup_rate", "satisfaction",
          "complaint_handling", "equipment_intact", "patrol_completion",
          "inspection_completion")


def rollup(site: str, device: str = "NULL", metric: str = "NULL",
           width: str = "'$__interval_ms ms'") -> str:
    """A FROM item of telemetry aggregates (device_id, metric, time, min, max, avg, count,
    last) per `width` over the dashboard's range, read from raw points, 1m or 1h rollups as
    the width allows: Grafana's interval follows its time range, so the range picks the tier."""
    return (f"telemetry_rollup({site}, {device}, {metric}, $__timeFrom(), $__timeTo(),"
            f" {width})")


# ---- variables and panels ------------------------------------------------------------------

def site_variable(*, multi: bool = False) -> QueryVariable:
    """$site: the configured sites (auto-registered ones are not sites anyone chose)."""
    v = (QueryVariable("site").label("Site 项目")
         .query("SELECT id AS __value, name AS __text FROM sites WHERE NOT auto_registered"
                " ORDER BY id")
         .datasource(DATASOURCE).refresh(VariableRefresh.ON_DASHBOARD_LOAD)
         .sort(VariableSort.ALPHABETICAL_ASC))
    return v.multi(True).include_all(True) if multi else v


def device_variable() -> QueryVariable:
    """$device: the site's devices in service."""
    return (QueryVariable("device").label("Device 设备")
            .query("SELECT id AS __value, name AS __text FROM devices WHERE site_id = '$site'"
                   " AND status = 'active' ORDER BY id")
            .datasource(DATASOURCE).refresh(VariableRefresh.ON_DASHBOARD_LOAD)
            .sort(VariableSort.ALPHABETICAL_ASC))


def metric_variable() -> QueryVariable:
    """$metric: the metrics the device's type reports."""
    return (QueryVariable("metric").label("Metric 测点")
            .query("SELECT jsonb_object_keys(t.metrics) FROM devices d"
                   " JOIN device_types t ON t.id = d.type_id"
                   " WHERE d.site_id = '$site' AND d.id = '$device' ORDER BY 1")
            .datasource(DATASOURCE).refresh(VariableRefresh.ON_DASHBOARD_LOAD))


def _thresholds(*steps: tuple[float | None, str]) -> ThresholdsConfig:
    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(
        [Threshold(value=v, color=c) for v, c in steps])


def series(title: str, *queries: str, unit: str = "short", w: int = 12,
           h: int = 8) -> timeseries.Panel:
    """A time series panel: each query returns `time`, optionally `metric`, and numbers."""
    p = (timeseries.Panel().title(title).datasource(DATASOURCE).unit(unit).span(w).height(h))
    for i, q in enumerate(queries):
        p = p.with_target(Sql(q).time_series().ref_id("ABCDEFGH"[i]))
    return p


def grid(title: str, query: str, *, w: int = 12, h: int = 8, unit: str = "short"
         ) -> table.Panel:
    """A table panel."""
    return (table.Panel().title(title).datasource(DATASOURCE).unit(unit).span(w).height(h)
            .with_target(Sql(query).table().ref_id("A")))


def big(title: str, query: str, *, unit: str = "short", w: int = 4, h: int = 4,
        steps: tuple[tuple[float | None, str], ...] = ((None, "green"),)) -> stat.Panel:
    """A stat panel over a one-row table query."""
    return (stat.Panel().title(title).datasource(DATASOURCE).unit(unit).span(w).height(h)
            .thresholds(_thresholds(*steps)).with_target(Sql(query).table().ref_id("A")))


def bars(title: str, query: str, *, unit: str = "short", w: int = 8, h: int = 8,
         steps: tuple[tuple[float | None, str], ...] = ((None, "green"),)) -> bargauge.Panel:
    """A bar gauge over a table query (one bar per row)."""
    return (bargauge.Panel().title(title).datasource(DATASOURCE).unit(unit).span(w).height(h)
            .thresholds(_thresholds(*steps)).with_target(Sql(query).table().ref_id("A")))


def _board(uid: str, title: str, description: str, time_from: str) -> Dashboard:
    return (Dashboard(title).uid(uid).description(description).tags(TAGS)
            .time(time_from, "now").refresh("1m").timezone("browser"))


# ---- the dashboards ------------------------------------------------------------------------

def fleet_overview() -> Dashboard:
    """Devices online/offline per site, active alarms by severity, open tickets by deadline."""
    return (_board("caretaker-fleet", "Caretaker · Fleet overview 设备总览",
                   "Devices online and offline per site, active alarms, open work orders by "
                   "deadline state.", "now-24h")
            .with_variable(site_variable(multi=True))
            .with_panel(grid("Devices per site 各项目设备", """
SELECT s.name AS site,
       count(*) FILTER (WHERE d.online) AS online,
       count(*) FILTER (WHERE d.online IS FALSE) AS offline,
       count(*) FILTER (WHERE d.online IS NULL) AS never_seen,
       count(*) AS devices
  FROM devices d JOIN sites s ON s.id = d.site_id
 WHERE d.site_id IN ($site) AND d.status = 'active'
 GROUP BY s.name ORDER BY s.name""", w=12))
            .with_panel(bars("Active alarms by severity 未消除告警", """
SELECT severity, count(*) AS alarms
  FROM alarms WHERE site_id IN ($site) AND state <> 'cleared'
 GROUP BY severity
 ORDER BY array_position(ARRAY['critical', 'major', 'minor', 'warning'], severity)""",
                             w=6, steps=((None, "green"), (1, "red"))))
            .with_panel(bars("Open work orders by deadline 未完成工单时限", """
SELECT CASE WHEN resolve_by < now() THEN 'overdue 超时'
            WHEN resolve_by < now() + interval '4 hours' THEN 'due within 4 h 4小时内到期'
            ELSE 'on track 正常' END AS deadline,
       count(*) AS work_orders
  FROM work_orders WHERE site_id IN ($site) AND state IN ('open', 'acknowledged', 'in_progress')
 GROUP BY 1 ORDER BY 1""", w=6))
            .with_panel(series("Readings per interval 数据接收量", """
SELECT r.time AS "time", s.id AS metric, sum(r.count) AS readings
  FROM sites s CROSS JOIN LATERAL """ + rollup("s.id") + """ r
 WHERE s.id IN ($site)
 GROUP BY 1, 2 ORDER BY 1""", w=12))
            .with_panel(series("Devices going offline 设备离线次数", """
SELECT $__timeGroupAlias(time, '1h'), site_id AS metric, count(*) AS went_offline
  FROM device_status
 WHERE $__timeFilter(time) AND site_id IN ($site) AND status = 'offline'
 GROUP BY 1, 2 ORDER BY 1""", w=12))
            .with_panel(series("Alarms raised by severity 告警数", """
SELECT $__timeGroupAlias(raised_at, '1h'), severity AS metric, count(*) AS alarms
  FROM alarms
 WHERE $__timeFilter(raised_at) AND site_id IN ($site)
 GROUP BY 1, 2 ORDER BY 1""", w=24)))


def device_detail() -> Dashboard:
    """One device: a metric with the thresholds of the rules that watch it, alarms."""
    levels = """
  FROM devices d
  JOIN rules r ON r.site_id = d.site_id AND r.enabled AND r.metric = '$metric'
              AND (r.device_id = d.id OR (r.device_id IS NULL
                   AND (r.device_type = d.type_id OR r.device_type IS NULL)))
  CROSS JOIN LATERAL (
        SELECT r.severity, coalesce((d.overrides -> r.id ->> 'threshold')::float8,
                                    (r.params ->> 'threshold')::float8) AS threshold
         WHERE NOT r.params ? 'levels'
        UNION ALL
        SELECT lv ->> 'severity', (lv ->> 'threshold')::float8
          FROM jsonb_array_elements(CASE WHEN jsonb_typeof(r.params -> 'levels') = 'array'
                                         THEN r.params -> 'levels' END) lv) l"""
    this_device = """
 WHERE d.site_id = '$site' AND d.id = '$device' AND l.threshold IS NOT NULL"""
    alarms = (AnnotationQuery().name("Alarms 告警").datasource(DATASOURCE).enable(True)
              .icon_color("red").target(Sql("""
SELECT raised_at AS time, coalesce(cleared_at, now()) AS timeend,
       severity || ' · ' || rule_id || ' · ' || message AS text, severity AS tags
  FROM alarms
 WHERE site_id = '$site' AND device_id = '$device'
   AND raised_at <= $__timeTo() AND coalesce(cleared_at, now()) >= $__timeFrom()
 ORDER BY raised_at LIMIT 500""").table().ref_id("Anno")))
    return (_board("caretaker-device", "Caretaker · Device detail 设备详情",
                   "One device's readings with the thresholds of the rules that watch them, "
                   "and its alarms as annotations.", "now-24h")
            .with_variable(site_variable()).with_variable(device_variable())
            .with_variable(metric_variable())
            .annotation(alarms)
            .with_panel(big("Online 在线", """
SELECT CASE WHEN online THEN 1 WHEN online IS FALSE THEN 0 END AS online
  FROM devices WHERE site_id = '$site' AND id = '$device'""",
                            steps=((None, "red"), (1, "green"))))
            .with_panel(big("Last seen 最后上报", """
SELECT extract(epoch FROM now() - last_seen) AS seconds_ago
  FROM devices WHERE site_id = '$site' AND id = '$device'""", unit="s"))
            .with_panel(big("Active alarms 未消除告警", """
SELECT count(*) AS alarms FROM alarms
 WHERE site_id = '$site' AND device_id = '$device' AND state <> 'cleared'""",
                            steps=((None, "green"), (1, "red"))))
            .with_panel(big("Open work orders 未完成工单", """
SELECT count(*) AS work_orders FROM work_orders
 WHERE site_id = '$site' AND device_id = '$device'
   AND state IN ('open', 'acknowledged', 'in_progress')""",
                            steps=((None, "green"), (1, "orange"))))
            .with_panel(big("Readings in range 区间读数", """
SELECT coalesce(sum(count), 0) AS readings
  FROM """ + rollup("'$site'", "'$device'", width="'1 hour'"), w=8))
            .with_panel(series("$metric and its thresholds 读数与阈值", """
SELECT time AS "time", avg AS "$metric"
  FROM """ + rollup("'$site'", "'$device'", "'$metric'") + """
 ORDER BY 1""", """
SELECT t AS time, r.id || ' ' || l.severity AS metric, l.threshold AS value""" + levels + """
  CROSS JOIN unnest(ARRAY[$__timeFrom()::timestamptz, $__timeTo()::timestamptz]) t""" + this_device
                   + " ORDER BY 1, 2", w=24, h=10))
            .with_panel(grid("Rules watching $metric 告警规则", """
SELECT r.id AS rule, r.name, r.kind, r.params ->> 'op' AS op, l.severity,
       l.threshold""" + levels + this_device + " ORDER BY 1, 5", w=12))
            .with_panel(grid("Alarms 告警记录", """
SELECT raised_at AS time, severity, rule_id, state, message, count,
       cleared_at, work_order_id
  FROM alarms
 WHERE site_id = '$site' AND device_id = '$device' AND $__timeFilter(raised_at)
 ORDER BY raised_at DESC LIMIT 200""", w=12)))


def alarms_and_work_orders() -> Dashboard:
    """Backlog, overdue, MTTA/MTTR trend, by source and category."""
    return (_board("caretaker-work-orders", "Caretaker · Alarms and work orders 告警与工单",
                   "Backlog and overdue work orders, response and repair times, work orders "
                   "by source and category.", "now-30d")
            .with_variable(site_variable())
            .with_panel(big("Backlog 积压工单", """
SELECT count(*) AS open FROM work_orders
 WHERE site_id = '$site' AND state IN ('open', 'acknowledged', 'in_progress')"""))
            .with_panel(big("Overdue 超时工单", """
SELECT count(*) AS overdue FROM work_orders
 WHERE site_id = '$site' AND state IN ('open', 'acknowledged', 'in_progress')
   AND resolve_by < now()""",
                            steps=((None, "green"), (1, "red"))))
            .with_panel(big("Active alarms 未消除告警", """
SELECT count(*) AS alarms FROM alarms WHERE site_id = '$site' AND state <> 'cleared'"""))
            .with_panel(big("Opened in range 新开工单", """
SELECT count(*) AS opened FROM work_orders
 WHERE site_id = '$site' AND $__timeFilter(opened_at)"""))
            .with_panel(big("MTTA in range 平均响应", """
SELECT value AS mtta FROM kpi_mtta_seconds('$site', $__timeFrom(), $__timeTo(), now())""",
                            unit="s"))
            .with_panel(big("MTTR in range 平均修复", """
SELECT value AS mttr FROM kpi_mttr_seconds('$site', $__timeFrom(), $__timeTo(), now())""",
                            unit="s"))
            .with_panel(series("Backlog and overdue over time 积压趋势", """
SELECT g AS time, count(w.id) AS backlog,
       count(w.id) FILTER (WHERE w.resolve_by < g) AS overdue
  FROM generate_series(
         time_bucket(greatest($__interval_ms, 3600000) * interval '1 ms',
                     $__timeFrom()::timestamptz),
         $__timeTo()::timestamptz, greatest($__interval_ms, 3600000) * interval '1 ms') g
  LEFT JOIN work_orders w
    ON w.site_id = '$site' AND w.opened_at <= g AND w.state <> 'cancelled'
   AND coalesce(least(w.resolved_at, w.closed_at, w.cancelled_at), 'infinity') > g
 GROUP BY g ORDER BY g""", w=12))
            .with_panel(series("MTTA and MTTR per day 响应/修复时长", """
SELECT $__timeGroupAlias(acknowledged_at, '1d'), 'MTTA' AS metric,
       avg(extract(epoch FROM acknowledged_at - opened_at)) AS seconds
  FROM work_orders
 WHERE site_id = '$site' AND $__timeFilter(acknowledged_at)
 GROUP BY 1, 2
UNION ALL
SELECT $__timeGroupAlias(resolved_at, '1d'), 'MTTR',
       avg(extract(epoch FROM resolved_at - opened_at))
  FROM work_orders
 WHERE site_id = '$site' AND $__timeFilter(resolved_at)
 GROUP BY 1, 2
 ORDER BY 1""", unit="s", w=12))
            .with_panel(series("Work orders opened per day by source 按来源", """
SELECT $__timeGroupAlias(opened_at, '1d'), source AS metric, count(*) AS opened
  FROM work_orders
 WHERE site_id = '$site' AND $__timeFilter(opened_at)
 GROUP BY 1, 2 ORDER BY 1""", w=12))
            .with_panel(grid("By source and category 按来源与类别", """
SELECT source, category, count(*) AS opened,
       count(*) FILTER (WHERE resolved_at IS NOT NULL) AS resolved,
       count(*) FILTER (WHERE state IN ('open', 'acknowledged', 'in_progress')
                          AND resolve_by < now()) AS overdue,
       round(avg(extract(epoch FROM resolved_at - opened_at)) / 3600, 1) AS mttr_hours
  FROM work_orders
 WHERE site_id = '$site' AND $__timeFilter(opened_at)
 GROUP BY 1, 2 ORDER BY 1, 2""", w=12))
            .with_panel(grid("Overdue work orders 超时工单", """
SELECT id, title, severity, category, source, device_id, state, opened_at, resolve_by,
       round(extract(epoch FROM now() - resolve_by) / 3600, 1) AS hours_late
  FROM work_orders
 WHERE site_id = '$site' AND state IN ('open', 'acknowledged', 'in_progress') AND resolve_by < now()
 ORDER BY resolve_by LIMIT 200""", w=24)))


def patrol_compliance() -> Dashboard:
    """Completion per route and guard, gaps over time."""
    visits = """
  FROM patrol_runs r JOIN patrol_visits v ON v.run_id = r.id
 WHERE r.site_id = '$site' AND r.planned_start >= $__timeFrom()
   AND r.planned_start < $__timeTo() AND v.timing <> 'pending' AND NOT v.equipment"""
    ratio = ("count(*) FILTER (WHERE v.timing IN ('early', 'on_time'))::float8"
             " / count(*) AS completion")
    good = ((None, "red"), (0.9, "orange"), (0.98, "green"))
    return (_board("caretaker-patrol", "Caretaker · Patrol compliance 巡更巡检",
                   "Checkpoint visits done on time per route and guard (the KPI library's "
                   "patrol_completion), equipment rounds, and inspection gaps over time.",
                   "now-7d")
            .with_variable(site_variable())
            .with_panel(big("Patrol completion 巡更完成率", """
SELECT value AS completion
  FROM kpi_patrol_completion('$site', $__timeFrom(), $__timeTo(), now())""",
                            unit="percentunit", w=6, steps=good))
            .with_panel(big("Inspection completion 设备巡检完成率", """
SELECT value AS completion
  FROM kpi_inspection_completion('$site', $__timeFrom(), $__timeTo(), now())""",
                            unit="percentunit", w=6, steps=good))
            .with_panel(big("Open gaps 未处理漏巡", """
SELECT count(*) AS gaps FROM inspection_gaps WHERE site_id = '$site' AND status = 'open'""",
                            w=6, steps=((None, "green"), (1, "orange"))))
            .with_panel(big("Gaps in range 区间漏巡", """
SELECT count(*) AS gaps FROM inspection_gaps
 WHERE site_id = '$site' AND $__timeFilter(detected_at)""", w=6))
            .with_panel(bars("Completion per route 按路线", f"""
SELECT r.route_id AS route, {ratio}{visits}
 GROUP BY 1 ORDER BY 1""", unit="percentunit", w=12, steps=good))
            .with_panel(bars("Completion per guard 按人员", f"""
SELECT coalesce(r.guard_id, 'post:' || r.post, '') AS guard, {ratio}{visits}
 GROUP BY 1 ORDER BY 1""", unit="percentunit", w=12, steps=good))
            .with_panel(series("Gaps over time 漏巡趋势", """
SELECT $__timeGroupAlias(detected_at, '1h'), kind AS metric, count(*) AS gaps
  FROM inspection_gaps
 WHERE site_id = '$site' AND $__timeFilter(detected_at)
 GROUP BY 1, 2 ORDER BY 1""", w=12))
            .with_panel(series("Completion per day 每日完成率", """
SELECT $__timeGroupAlias(r.planned_start, '1d'),
       count(*) FILTER (WHERE v.timing IN ('early', 'on_time'))::float8 / count(*)
           AS completion
  FROM patrol_runs r JOIN patrol_visits v ON v.run_id = r.id
 WHERE r.site_id = '$site' AND $__timeFilter(r.planned_start)
   AND v.timing <> 'pending' AND NOT v.equipment
 GROUP BY 1 ORDER BY 1""", unit="percentunit", w=12))
            .with_panel(grid("Visits per route and guard 巡更明细", f"""
SELECT r.route_id AS route, coalesce(r.guard_id, 'post:' || r.post, '') AS guard,
       count(*) AS expected,
       count(*) FILTER (WHERE v.timing IN ('early', 'on_time')) AS done,
       count(*) FILTER (WHERE v.timing = 'late') AS late,
       count(*) FILTER (WHERE v.timing = 'missed') AS missed,
       count(*) FILTER (WHERE v.status = 'out_of_order') AS out_of_order{visits}
 GROUP BY 1, 2 ORDER BY 1, 2""", w=24)))


def kpis() -> Dashboard:
    """The weekly KPIs against their targets, from the KPI library's SQL functions."""
    return (_board("caretaker-kpis", "Caretaker · KPIs 关键指标",
                   "The weekly KPIs (ISO weeks on the site's clock) against their targets: "
                   "kpi_weeks(), the same definitions as the weekly report and the API.",
                   "now-8w")
            .with_variable(site_variable())
            .with_panel(grid("Latest week against target 本周指标与目标", """
SELECT DISTINCT ON (name) time AS week, name AS kpi, value, target,
       CASE WHEN value IS NULL OR target IS NULL THEN NULL
            WHEN name IN ('mtta_seconds', 'mttr_seconds', 'backlog', 'repeat_faults')
            THEN value <= target ELSE value >= target END AS meets,
       numerator, denominator
  FROM kpi_weeks('$site', $__timeFrom(), $__timeTo())
 ORDER BY name, time DESC""", w=24, h=12))
            .with_panel(series("Rates per week 比率类指标", """
SELECT time, name AS metric, value
  FROM kpi_weeks('$site', $__timeFrom(), $__timeTo())
 WHERE name IN ('repair_timeliness', 'response_timeliness', 'followup_rate',
                'satisfaction', 'complaint_handling', 'equipment_intact', 'patrol_completion',
                'inspection_completion') ORDER BY 1, 2""", unit="percentunit", w=12, h=10))
            .with_panel(series("Rates against target per week 达标差距", """
SELECT time, name AS metric, value - target AS above_target
  FROM kpi_weeks('$site', $__timeFrom(), $__timeTo())
 WHERE name IN ('repair_timeliness', 'response_timeliness', 'followup_rate',
                'satisfaction', 'complaint_handling', 'equipment_intact', 'patrol_completion',
                'inspection_completion') AND target IS NOT NULL ORDER BY 1, 2""",
                               unit="percentunit", w=12, h=10))
            .with_panel(series("MTTA / MTTR / MTBF per week 时长类指标", """
SELECT time, name AS metric, value
  FROM kpi_weeks('$site', $__timeFrom(), $__timeTo())
 WHERE name IN ('mtta_seconds', 'mttr_seconds', 'mtbf_seconds') ORDER BY 1, 2""",
                               unit="s", w=12))
            .with_panel(series("Backlog and repeat faults per week 积压与重复故障", """
SELECT time, name AS metric, value
  FROM kpi_weeks('$site', $__timeFrom(), $__timeTo())
 WHERE name IN ('backlog', 'repeat_faults') ORDER BY 1, 2""", w=12)))


BUILDERS: dict[str, Callable[[], Dashboard]] = {
    "fleet-overview": fleet_overview, "device-detail": device_detail,
    "alarms-work-orders": alarms_and_work_orders, "patrol-compliance": patrol_compliance,
    "kpis": kpis,
}


def build_all() -> dict[str, DashboardModel]:
    """Every dashboard, built, by file name."""
    return {name: fn().build() for name, fn in BUILDERS.items()}


