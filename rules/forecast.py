"""Early warning, the pure part: when will a drifting metric cross a rule's threshold, how sure.

The method is the seasonal Kendall–Theil–Sen slope (Hirsch, Slack & Smith 1982; the usual
trend test of water-quality monitoring), on hourly values:
- the values are hourly *extremes* in the rule's direction (the hourly minimum for a `<` rule,
  the maximum for a `>` one): an alarm fires on single readings, not on a mean, and a pump
  that stops for part of an hour does not pull its vibration's maximum down;
- each hour of the day (UTC hour, so a fixed-offset site's local hour) is a season; the slope
  is the median of the slopes between values of the same hour on different days, so the daily
  cycle cancels out of every pair and a median shrugs off noise and outliers;
- the daily profile is each hour's median residual; the value predicted for a future hour is
  its profile plus the trend, so the crossing is when the worst hour of the day gets there;
- the confidence that the threshold is crossed within the horizon is the one-sided seasonal
  Kendall test that the true slope is at least the slope needed to get there in time, its
  variance widened for correlation between neighbouring hours (an AR(1) effective-sample
  correction). The slope's 90 % interval gives the earliest and latest crossing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

HOUR = 3600.0
SEASONS = 24
LIMIT_HOURS = 90 * 24  # crossings further out than this are "none foreseen"
INTERVAL_Z = 1.6449  # two-sided 90 % interval of the slope
MAX_RHO = 0.9
RISING = (">", ">=")
FALLING = ("<", "<=")
ORDERED = RISING + FALLING


@dataclass(frozen=True)
class Hourly:
    """One hour of a metric: the bucket's start and its mean, minimum, maximum and count."""

    at: datetime
    mean: float
    low: float
    high: float
    count: int = 1


@dataclass(frozen=True, eq=False)
class Trend:
    """A fitted seasonal trend: slope per hour, its interval, and the hourly profile.

    `profile[s]` is season s's value at the pivot time `centre` (epoch hours); the value
    expected at epoch hour t in season s is profile[s] + slope·(t − centre).
    """

    slope: float
    lower: float
    upper: float
    centre: float
    profile: tuple[float, ...]
    slopes: np.ndarray = field(repr=False)  # every same-season pairwise slope, sorted
    var_s: float  # variance of the seasonal Kendall S, after the correlation correction
    points: int
    rho: float


@dataclass(frozen=True)
class Forecast:
    """When the threshold is expected to be crossed (None: not within 90 days) and how sure."""

    expected: datetime | None
    earliest: datetime | None
    latest: datetime | None
    confidence: float  # probability that the crossing comes within the horizon
    slope_per_day: float
    points: int
    now_value: float  # the fitted value of the worst hour of today


def _hours(at: datetime) -> float:
    return at.timestamp() / HOUR


def _at(hours: float) -> datetime:
    return datetime.fromtimestamp(hours * HOUR, UTC)


def fit(times: Sequence[float], values: Sequence[float]) -> Trend | None:
    """The seasonal Theil–Sen trend of values at epoch hours `times` (one per hour bucket).

    None when no season has two values (fewer than two days of data).
    """
    t = np.asarray(times, dtype=float)
    y = np.asarray(values, dtype=float)
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], y[ok]
    season = np.floor(t).astype(np.int64) % SEASONS
    slopes: list[np.ndarray] = []
    var_s = 0.0
    for s in range(SEASONS):
        idx = np.flatnonzero(season == s)
        n = idx.size
        if n < 2:
            continue
        i, j = np.triu_indices(n, k=1)
        dt = t[idx[j]] - t[idx[i]]
        slopes.append((y[idx[j]] - y[idx[i]])[dt > 0] / dt[dt > 0])
        var_s += n * (n - 1) * (2 * n + 5) / 18.0
    if not slopes:
        return None
    every = np.sort(np.concatenate(slopes))
    if every.size == 0:
        return None
    slope = float(np.median(every))
    centre = float(np.median(t))
    resid = y - slope * (t - centre)
    profile = np.full(SEASONS, np.nan)
    for s in range(SEASONS):
        mine = resid[season == s]
        if mine.size:
            profile[s] = float(np.median(mine))
    if np.isnan(profile).any():  # hours never seen: the overall median stands in
        profile[np.isnan(profile)] = float(np.median(resid))
    rho = _lag1(t, resid - profile[season])
    var_s *= (1 + rho) / (1 - rho)
    n_slopes = every.size
    half = INTERVAL_Z * math.sqrt(var_s) / 2.0
    lo = int(min(n_slopes - 1, max(0, math.floor(n_slopes / 2.0 - half))))
    hi = int(min(n_slopes - 1, max(0, math.ceil(n_slopes / 2.0 + half) - 1)))
    return Trend(slope=slope, lower=float(every[lo]), upper=float(every[hi]), centre=centre,
                 profile=tuple(float(p) for p in profile), slopes=every, var_s=var_s,
                 points=int(t.size), rho=rho)


def _lag1(t: np.ndarray, e: np.ndarray) -> float:
    """Lag-1 autocorrelation of residuals one hour apart, clipped to [0, MAX_RHO]."""
    order = np.argsort(t)
    t, e = t[order], e[order]
    nxt = np.flatnonzero(np.isclose(np.diff(t), 1.0))
    denom = float(np.dot(e, e))
    if nxt.size < 2 or denom <= 0:
        return 0.0
    rho = float(np.dot(e[nxt], e[nxt + 1])) / denom * (e.size / nxt.size)
    return min(MAX_RHO, max(0.0, rho))


def _grid(now_h: float, hours: int) -> np.ndarray:
    """Epoch hours of the hourly buckets from the current one on (their middles)."""
    return math.floor(now_h) + 0.5 + np.arange(hours, dtype=float)


def _expected(trend: Trend, grid: np.ndarray, sign: float, threshold: float,
              slope: float) -> np.ndarray:
    """The fitted hourly extremes over `grid`, turned so that 'worse' is 'larger' (× sign)."""
    profile = np.asarray(trend.profile)
    season = np.floor(grid).astype(np.int64) % SEASONS
    turned: np.ndarray = sign * (profile[season] + slope * (grid - trend.centre) - threshold)
    return turned


def crossing(trend: Trend, *, op: str, threshold: float, now: datetime,
             slope: float | None = None) -> datetime | None:
    """The first hour from now whose fitted extreme meets `op threshold` (None: not in 90 d)."""
    sign = 1.0 if op in RISING else -1.0
    grid = _grid(_hours(now), LIMIT_HOURS)
    past = _expected(trend, grid, sign, threshold, trend.slope if slope is None else slope)
    hit = np.flatnonzero(past >= 0)
    if hit.size == 0:
        return None
    return max(now, _at(grid[hit[0]] - 0.5))


def confidence(trend: Trend, *, op: str, threshold: float, now: datetime,
               horizon: timedelta) -> float:
    """Probability that the fitted extremes meet `op threshold` within the horizon.

    The slope needed is the gentlest that reaches the threshold at some hour before the
    horizon ends (and at least a slope towards it); the answer is the seasonal Kendall
    test's one-sided probability that the true slope is at least that steep (normal
    approximation, continuity-corrected).
    """
    sign = 1.0 if op in RISING else -1.0
    hours = max(1, math.ceil(horizon.total_seconds() / HOUR))
    grid = _grid(_hours(now), hours)
    profile = np.asarray(trend.profile)
    season = np.floor(grid).astype(np.int64) % SEASONS
    gap = sign * threshold - sign * profile[season]  # how far each hour's profile has to go
    # in 'worse is larger' units per hour; at least a trend towards the threshold: a flat
    # signal whose extremes already touch it is the alarm rule's (and its hold time's) business
    need = max(0.0, float(np.min(gap / (grid - trend.centre))))
    turned = sign * trend.slopes
    s = float(np.count_nonzero(turned > need) - np.count_nonzero(turned < need))
    if s == 0 or trend.var_s <= 0:
        return 0.5
    z = (s - math.copysign(1.0, s)) / math.sqrt(trend.var_s)
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def values_for(points: Sequence[Hourly], op: str) -> tuple[list[float], list[float]]:
    """Epoch hours (bucket middles) and the hourly extreme in the rule's direction."""
    rising = op in RISING
    times = [_hours(p.at) + 0.5 for p in points]
    return times, [p.high if rising else p.low for p in points]


def forecast(points: Sequence[Hourly], *, op: str, threshold: float, now: datetime,
             horizon: timedelta, min_history: timedelta = timedelta(days=2)) -> Forecast | None:
    """The forecast of a rule's crossing from hourly values; None without enough history."""
    if op not in ORDERED or len(points) < 2:
        return None
    span = max(p.at for p in points) - min(p.at for p in points) + timedelta(hours=1)
    if span < min_history:
        return None
    trend = fit(*values_for(points, op))
    if trend is None:
        return None
    sign = 1.0 if op in RISING else -1.0
    fast, slow = ((trend.upper, trend.lower) if sign > 0 else (trend.lower, trend.upper))
    today = _grid(_hours(now), SEASONS)
    now_value = float(np.max(_expected(trend, today, sign, 0.0, trend.slope)) * sign)
    return Forecast(
        expected=crossing(trend, op=op, threshold=threshold, now=now),
        earliest=crossing(trend, op=op, threshold=threshold, now=now, slope=fast),
        latest=crossing(trend, op=op, threshold=threshold, now=now, slope=slow),
        confidence=confidence(trend, op=op, threshold=threshold, now=now, horizon=horizon),
        slope_per_day=trend.slope * 24.0, points=trend.points, now_value=now_value)


# ---- the decision ------------------------------------------------------------------------

# idle: nothing said; warned: a live preventive ticket says when; alarm: the real alarm fired;
# handled: people ended the ticket while the forecast still warns. From alarm and handled the
# forecast waits until it no longer foresees a crossing before it may warn again.
STATES = ("idle", "warned", "alarm", "handled")
MOVE_HOURS = 12.0  # an expected crossing that moves less than this is not worth a note
MOVE_SHARE = 0.25  # ... nor less than this share of the time left until it
NOTE_EVERY = timedelta(hours=12)  # and a ticket hears of a moving estimate at most this often


@dataclass(frozen=True)
class Step:
    """What to do with the ticket, and the state from now on.

    action: open (a new preventive ticket), update (a note: the estimate moved), withdraw
    (cancel the ticket: no crossing foreseen any more), quiet (a note: the real alarm fired,
    nothing more until it is gone), none.
    """

    action: str
    state: str


def moved(expected: datetime | None, noted: datetime | None, now: datetime) -> bool:
    """Whether the expected crossing moved enough since the ticket last said it."""
    if expected is None or noted is None:
        return expected != noted
    left = max(0.0, (noted - now).total_seconds() / HOUR)
    return abs((expected - noted).total_seconds()) / HOUR >= max(MOVE_HOURS, MOVE_SHARE * left)


def decide(state: str, estimate: Forecast | None, *, now: datetime, alarm_active: bool,
           ticket_live: bool, noted: datetime | None, min_confidence: float,
           withdraw_below: float, noted_at: datetime | None = None) -> Step:
    """The next step for one device and condition, from its state and the new estimate.

    `noted` is the crossing the ticket last said, `noted_at` when it said it.
    """
    if alarm_active:
        return Step("quiet" if state == "warned" and ticket_live else "none", "alarm")
    if state == "warned" and not ticket_live:
        state = "handled"  # people resolved, closed or cancelled it
    if estimate is None:  # not enough data: keep what was said
        return Step("none", state)
    gone = estimate.confidence < withdraw_below
    if state in ("alarm", "handled"):
        return Step("none", "idle" if gone else state)
    if state == "idle":
        return Step("open", "warned") if estimate.confidence >= min_confidence else Step(
            "none", "idle")
    if gone:
        return Step("withdraw", "idle")
    recent = noted_at is not None and now - noted_at < NOTE_EVERY
    if moved(estimate.expected, noted, now) and not recent:
        return Step("update", "warned")
    return Step("none", "warned")
