"""The KPI library's pure arithmetic: periods in a time zone, ratios, intervals, buckets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from caretaker.errors import Invalid
from reports import kpis
from reports.kpis import DeviceTime, intact, local_period, offline_intervals, union_seconds
from reports.targets import DEFAULTS, TargetsError, parse_targets

T = datetime(2026, 11, 23, tzinfo=UTC)
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def h(hours: float) -> datetime:
    return T + timedelta(hours=hours)


def test_period_is_local_midnight_to_midnight_across_daylight_saving() -> None:
    spring = local_period("Europe/Berlin", date(2026, 3, 29), date(2026, 3, 30), now=NOW)
    assert spring.start == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert spring.end - spring.start == timedelta(hours=23)
    autumn = local_period("America/New_York", date(2026, 11, 1), date(2026, 11, 2), now=NOW)
    assert autumn.start == datetime(2026, 11, 1, 4, tzinfo=UTC)
    assert autumn.end - autumn.start == timedelta(hours=25)
    week = local_period("Asia/Shanghai", date(2026, 11, 16), date(2026, 11, 23), now=NOW)
    assert week.end - week.start == timedelta(days=7)


def test_period_until_is_clipped_to_now() -> None:
    p = local_period("UTC", date(2026, 11, 23), date(2026, 11, 30), now=h(5))
    assert p.until == h(5)
    assert local_period("UTC", date(2026, 11, 23), date(2026, 11, 30), now=h(-5)).until == T


@pytest.mark.parametrize(("start", "end"), [(date(2026, 1, 2), date(2026, 1, 2)),
                                            (date(2026, 1, 2), date(2026, 1, 1)),
                                            (date(2024, 1, 1), date(2026, 1, 1)),
                                            (date(1, 1, 1), date(1, 1, 2))])
def test_bad_periods_are_refused(start: date, end: date) -> None:
    with pytest.raises(Invalid):
        local_period("UTC", start, end, now=NOW)


def test_nothing_to_count_is_none_not_zero_or_one() -> None:
    assert kpis.ratio(0, 0) is None
    assert kpis.ratio(0, 3) == 0
    assert kpis.share(0, 0).value is None
    assert kpis.mean(None, 0, None).value is None
    assert kpis.mean(30.0, 3, 20.0).value == 10.0


def test_union_of_intervals_within_the_period() -> None:
    spans = [(h(-2), h(1)), (h(0.5), h(2)), (h(3), h(4)), (h(3.5), h(3.75)), (h(9), h(12))]
    assert union_seconds(spans, T, h(10)) == (2 + 1 + 1) * 3600
    assert union_seconds([], T, h(10)) == 0


def test_offline_stretches_from_status_changes() -> None:
    changes = [(h(1), "online"), (h(2), "offline"), (h(2.5), "offline"), (h(3), "online"),
               (h(5), "offline")]
    got = offline_intervals(changes)
    assert got[0] == (h(2), h(3))
    assert got[1][0] == h(5) and got[1][1] == kpis.FOREVER


def test_equipment_intact_point_and_time_weighted() -> None:
    devices = {
        "ok": DeviceTime("pump"),
        "ticket": DeviceTime("pump", tickets=[(h(6), kpis.FOREVER)]),       # open at the end
        "was-off": DeviceTime("meter", status=[(h(-1), "offline"), (h(2), "online")]),
        "fixed": DeviceTime("meter", tickets=[(h(1), h(4))]),
    }
    k = intact(devices, T, h(10), target=1.0)
    assert (k.value, k.numerator, k.denominator, k.target) == (0.75, 3, 4, 1.0)
    tw = k.breakdown["time_weighted"]
    assert tw["denominator"] == 4 * 10 * 3600
    assert tw["numerator"] == (40 - 4 - 2 - 3) * 3600
    assert k.breakdown["worst"][0]["device"] == "ticket"
    assert k.breakdown["by_type"]["pump"]["value"] == pytest.approx(16 / 20)
    assert intact({}, T, h(10)).value is None


def test_a_ticket_resolved_exactly_at_the_period_end_leaves_the_device_intact() -> None:
    k = intact({"d": DeviceTime("x", tickets=[(h(1), h(10))])}, T, h(10))
    assert k.value == 1.0


def test_backlog_buckets() -> None:
    assert [kpis.age_bucket(i) for i in range(4)] == ["lt_1d", "1d_3d", "3d_7d", "gt_7d"]


def test_previous_period_has_the_same_length() -> None:
    assert kpis.previous_period(date(2026, 11, 16), date(2026, 11, 23)) == (
        date(2026, 11, 9), date(2026, 11, 16))


def test_targets_default_to_the_seed_and_refuse_nonsense() -> None:
    assert DEFAULTS.target("repair_timeliness") == 0.99
    assert DEFAULTS.target("equipment_intact") == 1.0
    assert DEFAULTS.target("satisfaction") == 0.98
    assert DEFAULTS.target("complaint_handling") == 1.0
    assert DEFAULTS.target("mtta_seconds") is None
    assert DEFAULTS.followup("complaints") == 1.0 and DEFAULTS.followup("居家维修") == 1.0
    assert DEFAULTS.followup("公区维修") == 0.9
    t = parse_targets({"repair_timeliness": 0.95, "followup_by_category": {"公区维修": 0.5}})
    assert t.target("repair_timeliness") == 0.95 and t.followup("公区维修") == 0.5
    assert t.followup("居家维修") == 1.0
    assert t.stored() == {"repair_timeliness": 0.95, "followup_by_category": {"公区维修": 0.5}}
    with pytest.raises(TargetsError, match="repair_timeliness"):
        parse_targets({"repair_timeliness": 99})
    with pytest.raises(TargetsError, match="unknown_kpi"):
        parse_targets({"unknown_kpi": 1})
