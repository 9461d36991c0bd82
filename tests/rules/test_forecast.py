"""Early warning, the pure part: the trend fit, the crossing, the confidence and the decision."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from caretaker.errors import Invalid
from rules.forecast import Forecast, Hourly, decide, fit, forecast, moved
from rules.forecast_config import parse_spec

T0 = datetime(2026, 11, 2, tzinfo=UTC)
WEEK = timedelta(days=7)


def series(days: float, per_day: float, *, seed: int = 1, base: float = 50.0, amp: float = 8.0,
           noise: float = 1.0, start: datetime = T0, spike_every: int = 0) -> list[Hourly]:
    """Hourly buckets of 60 noisy readings on a daily cycle plus a linear trend (per day)."""
    rng = random.Random(seed)
    out = []
    for h in range(int(days * 24)):
        at = start + timedelta(hours=h)
        hour = at.timestamp() / 3600
        level = base + amp * math.cos(2 * math.pi * (hour % 24 - 15) / 24) + per_day * h / 24
        values = [level + rng.gauss(0, noise) for _ in range(60)]
        if spike_every and h % spike_every == 0:
            values[0] -= 40.0  # a glitch: one wild reading in the hour
        out.append(Hourly(at, sum(values) / 60, min(values), max(values), 60))
    return out


def test_the_slope_is_found_through_noise_and_a_daily_cycle() -> None:
    for per_day in (-3.0, -0.5, 0.0, 1.5):
        points = series(5, per_day, seed=7)
        times = [p.at.timestamp() / 3600 + 0.5 for p in points]
        trend = fit(times, [p.mean for p in points])
        assert trend is not None
        assert trend.slope * 24 == pytest.approx(per_day, abs=0.15)
        assert trend.lower <= trend.slope <= trend.upper
        # the daily profile is recovered: its swing is the cycle's (2 × 8), not the trend's
        assert max(trend.profile) - min(trend.profile) == pytest.approx(16, abs=1.5)


def test_a_known_crossing_is_predicted_within_hours() -> None:
    # falling 3 per day: after 5 days the daily mean is 35, its trough (03:00 UTC) 27 and the
    # hourly minimum there about 27 - 2.3 sigma; it meets 15 about 3.2 days later
    points = series(5, -3.0, seed=3)
    now = T0 + timedelta(days=5)
    estimate = forecast(points, op="<", threshold=15.0, now=now, horizon=WEEK)
    assert estimate is not None and estimate.expected is not None
    truth = now + timedelta(days=(27 - 2.3 - 15) / 3)
    # the crossing comes at a trough of the cycle, within a day of the straight-line truth
    assert abs((estimate.expected - truth).total_seconds()) < 24 * 3600
    assert estimate.expected.hour in range(0, 7)
    assert estimate.earliest is not None and estimate.earliest <= estimate.expected
    assert estimate.latest is None or estimate.latest >= estimate.expected
    assert estimate.confidence > 0.99
    assert estimate.slope_per_day == pytest.approx(-3.0, abs=0.2)


def test_rising_rules_use_the_hourly_maximum() -> None:
    points = series(5, 1.0, seed=4)
    now = T0 + timedelta(days=5)
    estimate = forecast(points, op=">=", threshold=68.0, now=now, horizon=WEEK)
    assert estimate is not None and estimate.confidence > 0.99
    # by the hourly means (peak 58 + 5 = 63 now) it would be 5 days; by the maxima (~ +2.3)
    # it is sooner
    assert estimate.expected is not None
    assert estimate.expected - now < timedelta(days=4)
    assert estimate.now_value == pytest.approx(50 + 8 + 5 + 2.3, abs=1.0)


@pytest.mark.parametrize("seed", range(20))
def test_no_warning_on_stable_noise_with_a_cycle_and_glitches(seed: int) -> None:
    points = series(5, 0.0, seed=seed, spike_every=7)
    now = T0 + timedelta(days=5)
    estimate = forecast(points, op="<", threshold=30.0, now=now, horizon=WEEK)
    assert estimate is not None
    assert estimate.confidence < 0.5


def test_a_slow_drift_beyond_the_horizon_is_not_a_warning() -> None:
    points = series(5, -1.0, seed=5)  # reaches 25 in about 10 days
    now = T0 + timedelta(days=5)
    estimate = forecast(points, op="<", threshold=25.0, now=now, horizon=WEEK)
    assert estimate is not None and estimate.expected is not None
    assert estimate.expected - now > WEEK
    assert estimate.confidence < 0.1
    longer = forecast(points, op="<", threshold=25.0, now=now, horizon=timedelta(days=14))
    assert longer is not None and longer.confidence > 0.99


def test_a_drift_away_from_the_threshold_foresees_no_crossing() -> None:
    estimate = forecast(series(5, 2.0, seed=6), op="<", threshold=25.0,
                        now=T0 + timedelta(days=5), horizon=WEEK)
    assert estimate is not None
    assert estimate.expected is None and estimate.confidence < 0.01


def test_too_little_history_gives_no_estimate() -> None:
    now = T0 + timedelta(days=5)
    assert forecast(series(1.5, -5.0), op="<", threshold=25.0, now=now, horizon=WEEK) is None
    assert forecast([], op="<", threshold=25.0, now=now, horizon=WEEK) is None
    assert forecast(series(5, -5.0), op="==", threshold=25.0, now=now, horizon=WEEK) is None


def test_correlated_hours_widen_the_interval() -> None:
    rng = random.Random(9)
    walk, out = 0.0, []
    for h in range(120):  # a random walk: neighbouring hours are strongly correlated
        walk = 0.95 * walk + rng.gauss(0, 1.0)
        at = T0 + timedelta(hours=h)
        out.append(Hourly(at, 50 + walk, 50 + walk, 50 + walk))
    trend = fit([p.at.timestamp() / 3600 + 0.5 for p in out], [p.mean for p in out])
    assert trend is not None and trend.rho > 0.5


# ---- the decision ------------------------------------------------------------------------

NOW = T0 + timedelta(days=5)


def est(confidence: float, days: float | None = 3.0) -> Forecast:
    expected = None if days is None else NOW + timedelta(days=days)
    return Forecast(expected=expected, earliest=expected, latest=expected,
                    confidence=confidence, slope_per_day=-1.0, points=120, now_value=40.0)


def step(state: str, estimate: Forecast | None, *, alarm: bool = False, live: bool = True,
         noted: datetime | None = None, noted_at: datetime | None = None) -> tuple[str, str]:
    s = decide(state, estimate, now=NOW, alarm_active=alarm, ticket_live=live, noted=noted,
               noted_at=noted_at, min_confidence=0.99, withdraw_below=0.5)
    return s.action, s.state


def test_decisions() -> None:
    noted = NOW + timedelta(days=3)
    assert step("idle", est(0.995)) == ("open", "warned")
    assert step("idle", est(0.9)) == ("none", "idle")
    assert step("idle", None) == ("none", "idle")
    # warned: small moves are not worth a note, large ones are; a fading forecast withdraws
    assert step("warned", est(0.995, 3.1), noted=noted) == ("none", "warned")
    assert step("warned", est(0.995, 2.0), noted=noted) == ("update", "warned")
    # ... but a ticket hears of a moving estimate at most every 12 hours
    assert step("warned", est(0.995, 2.0), noted=noted,
                noted_at=NOW - timedelta(hours=3)) == ("none", "warned")
    assert step("warned", est(0.995, 2.0), noted=noted,
                noted_at=NOW - timedelta(hours=13)) == ("update", "warned")
    assert step("warned", est(0.7, 3.0), noted=noted) == ("none", "warned")  # hysteresis
    assert step("warned", est(0.3, None), noted=noted) == ("withdraw", "idle")
    assert step("warned", None, noted=noted) == ("none", "warned")
    # the real alarm: a note once, then quiet until it is gone and the forecast has faded
    assert step("warned", est(0.999), alarm=True) == ("quiet", "alarm")
    assert step("alarm", est(0.999), alarm=True) == ("none", "alarm")
    assert step("idle", est(0.999), alarm=True) == ("none", "alarm")
    assert step("alarm", est(0.999)) == ("none", "alarm")
    assert step("alarm", est(0.2)) == ("none", "idle")
    # people ended the ticket: no second one while the same forecast stands
    assert step("warned", est(0.999), live=False, noted=noted) == ("none", "handled")
    assert step("handled", est(0.999), live=False) == ("none", "handled")
    assert step("handled", est(0.1), live=False) == ("none", "idle")


def test_moved() -> None:
    noted = NOW + timedelta(days=4)
    assert not moved(noted + timedelta(hours=5), noted, NOW)
    soon = NOW + timedelta(days=1)
    assert not moved(soon + timedelta(hours=11), soon, NOW)  # less than 12 h
    assert moved(soon + timedelta(hours=13), soon, NOW)
    assert not moved(noted + timedelta(hours=20), noted, NOW)  # < 25 % of 4 days
    assert moved(noted + timedelta(hours=30), noted, NOW)
    assert moved(None, noted, NOW) and moved(noted, None, NOW) and not moved(None, None, NOW)


def test_the_section_is_checked() -> None:
    spec = parse_spec({"rules": ["a", {"rule": "b", "level": "major"}], "horizon": "3d"})
    assert spec.horizon == timedelta(days=3) and spec.min_confidence == 0.99
    assert spec.watched(["a", "b", "c"]) == {"a": None, "b": "major"}
    assert parse_spec({"rules": "*"}).watched(["x"]) == {"x": None}
    assert parse_spec(None).watched(["x"]) == {}
    for bad, word in (({"min_confidence": 0.3}, "min_confidence"),
                      ({"withdraw_below": 0.995}, "withdraw_below"),
                      ({"window": "1d"}, "window"), ({"horizon": "0s"}, "horizon"),
                      ({"rules": [{"rule": "a", "level": "huge"}]}, "level"),
                      ({"colour": "red"}, "colour")):
        with pytest.raises(Invalid, match=word):
            parse_spec(bad)


def test_a_flat_signal_already_touching_the_threshold_is_no_forecast() -> None:
    # the hourly minima dip below 40 every night, and the alarm's hold time decides about that;
    # without a trend towards the threshold there is nothing to forecast
    points = series(5, 0.0, seed=8)
    estimate = forecast(points, op="<", threshold=40.0, now=T0 + timedelta(days=5),
                        horizon=WEEK)
    assert estimate is not None and estimate.expected is not None  # the next trough
    assert estimate.confidence < 0.99
