"""The fire-pump test log's pure parts: starts from samples, periods in local time, verdicts."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from rules import fire_pumps as fp
from simulators.devices import reading
from simulators.fleet import Device

SH = "Asia/Shanghai"
ZONE = ZoneInfo(SH)
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
RIVERSIDE = fp.FirePumpSpec.model_validate({
    "min_run": "1m", "min_pressure": 0.9,
    "jockey": {"start_pressure": {"min": 0.78, "max": 0.82},
               "stop_pressure": {"min": 0.83, "max": 0.87}, "max_starts_per_day": 30}})


def s(minute: float, running: bool | None, pressure: float | None = 0.8,
      mode: str | None = None, flow: float | None = None) -> fp.Sample:
    return fp.Sample(T0 + timedelta(minutes=minute), running, pressure, flow, mode)


def local(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=ZONE)


def simulated(type_id: str, start: datetime, hours: float, step: float = 60.0, *, index: int = 0,
              overrides: dict[str, object] | None = None) -> list[fp.Sample]:
    """The simulator's readings of one pump as samples."""
    device = Device("riverside", f"{type_id}-{index}", type_id, index, "", 8 * 3600)
    rng = random.Random(3)
    out = []
    for k in range(int(hours * 3600 / step)):
        t = start.timestamp() + k * step
        r = reading(device, t, rng, overrides or {})  # type: ignore[arg-type]
        out.append(fp.Sample(datetime.fromtimestamp(t, UTC), bool(r["running"]),
                             float(r["outlet_pressure"]),
                             float(r["flow"]) if "flow" in r else None,
                             str(r["start_mode"]) if "start_mode" in r else None))
    return out


# ---- starts --------------------------------------------------------------------------------

def test_a_run_is_from_the_first_running_sample_to_the_first_stopped_one() -> None:
    samples = [s(0, False, 0.79), s(1, True, 0.95, "auto", 20.0), s(2, True, 1.06, "auto", 25.0),
               s(3, True, 1.04, "auto", 24.0), s(4, False, 0.81, "standby"), s(5, False, 0.8)]
    runs, resume = fp.detect_runs(samples)
    assert runs == [fp.Run(T0 + timedelta(minutes=1), T0 + timedelta(minutes=4), 1.06, 0.79,
                           0.81, 25.0, "auto")]
    assert runs[0].duration == timedelta(minutes=3)
    assert resume == T0 + timedelta(minutes=5)


def test_runs_cut_by_the_edges_are_left_for_the_next_scan() -> None:
    samples = [s(0, True, mode="manual"), s(1, False), s(2, True, mode="auto"), s(3, True)]
    runs, resume = fp.detect_runs(samples)
    assert runs == []  # the first began before the samples, the last has not ended
    assert resume == T0 + timedelta(minutes=1)
    # the next scan resumes at the stopped sample and sees the second run whole
    later = [s(1, False), s(2, True, mode="auto"), s(3, True), s(4, False)]
    runs, resume = fp.detect_runs(later)
    assert [(r.started_at, r.mode) for r in runs] == [(T0 + timedelta(minutes=2), "auto")]
    assert resume == T0 + timedelta(minutes=4)


def test_samples_that_cannot_tell_are_skipped() -> None:
    samples = [s(0, False), s(1, None), s(2, True, mode="auto"), s(3, None), s(4, False)]
    runs, resume = fp.detect_runs(samples)
    assert [(r.started_at, r.stopped_at, r.mode) for r in runs] == [
        (T0 + timedelta(minutes=2), T0 + timedelta(minutes=4), "auto")]
    assert resume == T0 + timedelta(minutes=4)
    assert fp.detect_runs([s(0, None), s(1, None)]) == ([], None)


def test_the_simulated_fire_pumps_weekly_and_monthly_starts_are_found() -> None:
    # 2026-11-30 (Monday) .. 2026-12-07: the weekly test on Monday, the monthly manual start on
    # the first Wednesday of December (the 2nd)
    runs, _ = fp.detect_runs(simulated("fire_pump", local(2026, 11, 30), 24 * 7, index=1))
    assert [(r.started_at.astimezone(ZONE).strftime("%a %H:%M"), r.mode) for r in runs] == [
        ("Mon 10:15", "auto"), ("Wed 14:15", "manual")]
    for r in runs:
        assert r.duration == timedelta(minutes=10)
        assert r.pressure_reached is not None and r.pressure_reached > 1.0
        assert r.flow_max is not None and r.flow_max > 20
        assert r.start_pressure is not None and 0.75 < r.start_pressure < 0.85
    skipped = simulated("fire_pump", local(2026, 11, 30), 24 * 7,
                        overrides={"auto_test": False})
    assert [r.mode for r in fp.detect_runs(skipped)[0]] == ["manual"]


def test_the_simulated_jockey_pump_cycles_between_its_pressures() -> None:
    runs, _ = fp.detect_runs(simulated("jockey_pump", local(2026, 11, 30), 24))
    assert 15 <= len(runs) <= 17  # a start every 90 minutes
    assert all(0.79 <= (r.start_pressure or 0) <= 0.81 for r in runs)
    assert all(0.84 <= (r.stop_pressure or 0) <= 0.86 for r in runs)
    assert fp.jockey_day(runs, 1440, RIVERSIDE).status == "done"
    leaking, _ = fp.detect_runs(simulated("jockey_pump", local(2026, 11, 30), 24,
                                          overrides={"cycle": 1200}))
    verdict = fp.jockey_day(leaking, 1440, RIVERSIDE)
    assert verdict.status == "failed" and len(leaking) > 30
    assert verdict.reason and "a leak?" in verdict.reason
    assert verdict.details["starts"] == len(leaking)


# ---- periods -------------------------------------------------------------------------------

def test_periods_are_local_weeks_months_and_days() -> None:
    at = local(2026, 12, 2, 14)  # a Wednesday afternoon in Shanghai
    assert fp.period_of("weekly_auto", at, SH) == (local(2026, 11, 30), local(2026, 12, 7))
    assert fp.period_of("monthly_manual", at, SH) == (local(2026, 12, 1), local(2027, 1, 1))
    assert fp.period_of("jockey_daily", at, SH) == (local(2026, 12, 2), local(2026, 12, 3))
    # 23:30 UTC on Sunday is already Monday in Shanghai
    sunday_utc = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    assert fp.period_of("weekly_auto", sunday_utc, SH)[0] == local(2026, 11, 30)
    assert fp.period_of("weekly_auto", sunday_utc, "UTC")[0] == datetime(2026, 11, 23,
                                                                          tzinfo=UTC)
    assert fp.next_period("monthly_manual", local(2026, 12, 1), SH) == (local(2027, 1, 1),
                                                                         local(2027, 2, 1))


def test_only_whole_periods_after_the_log_began_and_ended_by_until_are_judged() -> None:
    since = local(2026, 11, 18, 9)  # a Wednesday morning: that week is not whole
    weeks = fp.periods("weekly_auto", since=since, until=local(2026, 12, 8), tz=SH)
    assert weeks == [(local(2026, 11, 23), local(2026, 11, 30)),
                     (local(2026, 11, 30), local(2026, 12, 7))]
    assert fp.periods("weekly_auto", since=local(2026, 11, 23), until=local(2026, 11, 30),
                      tz=SH) == [(local(2026, 11, 23), local(2026, 11, 30))]
    assert fp.periods("weekly_auto", since=since, until=local(2026, 11, 29, 23), tz=SH) == []
    months = fp.periods("monthly_manual", since=local(2026, 11, 1), until=local(2027, 3, 1),
                        tz=SH)
    assert [m[0].month for m in months] == [11, 12, 1, 2]
    days = fp.periods("jockey_daily", since=since, until=local(2026, 11, 22), tz=SH, limit=2)
    assert days == [(local(2026, 11, 19), local(2026, 11, 20)),
                    (local(2026, 11, 20), local(2026, 11, 21))]


def test_periods_follow_daylight_saving_in_zones_that_have_it() -> None:
    weeks = fp.periods("weekly_auto", since=datetime(2026, 3, 1, tzinfo=UTC),
                       until=datetime(2026, 4, 1, tzinfo=UTC), tz="Europe/Berlin")
    lengths = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in weeks}
    assert timedelta(days=7) - timedelta(hours=1) in lengths  # the week clocks go forward
    assert all(a.astimezone(ZoneInfo("Europe/Berlin")).hour == 0 for a, _ in weeks)


# ---- verdicts ------------------------------------------------------------------------------

def run(minutes: float = 10, pressure: float | None = 1.05, mode: str | None = "auto") -> fp.Run:
    return fp.Run(T0, T0 + timedelta(minutes=minutes), pressure, 0.8, 0.8, 25.0, mode)


def test_a_start_test_is_done_failed_or_missed() -> None:
    assert fp.start_test("weekly_auto", [run()], RIVERSIDE).status == "done"
    # a manual start is not the automatic test, nor the other way round
    missed = fp.start_test("weekly_auto", [run(mode="manual")], RIVERSIDE)
    assert (missed.status, missed.reason) == ("missed", "no auto start")
    assert missed.details == {"problems": [{"kind": "no_start", "mode": "auto"}]}
    assert fp.start_test("monthly_manual", [run()], RIVERSIDE).status == "missed"
    assert fp.start_test("monthly_manual", [run(mode="manual")], RIVERSIDE).status == "done"
    short = fp.start_test("weekly_auto", [run(minutes=0.5)], RIVERSIDE)
    assert short.status == "failed" and short.reason == "ran 30 s, less than 60 s"
    weak = fp.start_test("weekly_auto", [run(pressure=0.85)], RIVERSIDE)
    assert weak.status == "failed" and "0.85 MPa, less than 0.9 MPa" in (weak.reason or "")
    assert weak.details["problems"] == [{"kind": "low_pressure", "value": 0.85, "limit": 0.9}]
    both = fp.start_test("weekly_auto", [run(minutes=0.5, pressure=0.85)] * 2, RIVERSIDE)
    assert both.reason == "ran 30 s, less than 60 s; reached 0.85 MPa, less than 0.9 MPa"
    # one good start among poor ones is enough
    good = run()
    assert fp.start_test("weekly_auto", [run(minutes=0.5), good], RIVERSIDE).run == good
    assert fp.start_test("weekly_auto", [], RIVERSIDE).status == "missed"


def test_a_start_the_pump_did_not_classify_counts_as_the_site_says() -> None:
    unknown = [run(mode=None)]
    assert fp.start_test("weekly_auto", unknown, RIVERSIDE).status == "missed"
    lenient = RIVERSIDE.model_copy(update={"unknown_mode": "auto"})
    assert fp.start_test("weekly_auto", unknown, lenient).status == "done"


def test_the_jockey_day_checks_pressures_starts_and_readings() -> None:
    def jr(start: float, stop: float) -> fp.Run:
        return fp.Run(T0, T0 + timedelta(minutes=3), stop, start, stop, None, None)

    ok = fp.jockey_day([jr(0.80, 0.85)] * 16, 1440, RIVERSIDE)
    assert ok.status == "done"
    assert ok.details == {"starts": 16, "start_pressure": 0.8, "stop_pressure": 0.85,
                          "max_starts": 30}
    low = fp.jockey_day([jr(0.70, 0.85)] * 4, 1440, RIVERSIDE)
    assert low.status == "failed" and "starts at 0.7 MPa" in (low.reason or "")
    high = fp.jockey_day([jr(0.80, 0.95)] * 4, 1440, RIVERSIDE)
    assert high.status == "failed" and "stops at 0.95 MPa" in (high.reason or "")
    assert high.details["problems"] == [{"kind": "stop_pressure", "value": 0.95, "min": 0.83,
                                         "max": 0.87}]
    assert fp.jockey_day([], 1440, RIVERSIDE).status == "done"  # the pressure held all day
    silent = fp.jockey_day([], 0, RIVERSIDE)
    assert (silent.status, silent.reason) == ("missed", "no readings that day")


def test_the_section_is_checked() -> None:
    spec = fp.FirePumpSpec()
    assert spec.required == list(fp.TESTS) and spec.jockey.max_starts_per_day == 96
    assert fp.tests_for("fire", spec) == ["weekly_auto", "monthly_manual"]
    assert fp.tests_for("jockey", spec) == ["jockey_daily"]
    weekly_only = fp.FirePumpSpec.model_validate({"required": ["weekly_auto"]})
    assert fp.tests_for("jockey", weekly_only) == []
    for bad in ({"required": ["yearly"]}, {"required": ["weekly_auto", "weekly_auto"]},
                {"jockey": {"start_pressure": {"min": 0.9, "max": 0.8}}},
                {"min_run": "soon"}, {"judge_silent_after": "0s"}, {"colour": "red"},
                {"jockey": {"max_starts_per_day": 0}}):
        with pytest.raises(ValidationError):
            fp.FirePumpSpec.model_validate(bad)
