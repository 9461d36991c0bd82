"""The batch window adapts to the arrival rate: pure, no I/O."""

from __future__ import annotations

import pytest

from ingest.batch import Pace


def test_the_window_gathers_the_target_at_the_recent_rate_within_bounds() -> None:
    pace = Pace(least=0.05, most=0.2, target=250)
    assert pace.window() == 0.05  # nothing measured yet: the busy stream's window
    pace.observe(5000, 1.0)
    assert pace.window() == 0.05  # 5,000 msg/s: 250 messages in 50 ms
    thin = Pace(least=0.05, most=0.2, target=250)
    thin.observe(300, 0.1)
    assert thin.window() == pytest.approx(250 / 3000)  # 3,000 msg/s: 83 ms for 250
    quiet = Pace(least=0.05, most=0.2, target=250)
    quiet.observe(1, 2.0)
    assert quiet.window() == 0.2  # a trickle waits no longer than `most`


def test_the_rate_is_smoothed_and_ignores_empty_observations() -> None:
    pace = Pace(least=0.01, most=1.0, target=100, smoothing=0.5)
    pace.observe(1000, 1.0)
    pace.observe(0, 1.0)
    pace.observe(10, 0.0)
    assert pace.rate == 1000
    pace.observe(3000, 1.0)
    assert pace.rate == 2000 and pace.window() == pytest.approx(0.05)
