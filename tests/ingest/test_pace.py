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


def test_a_busy_batch_counts_its_window_from_the_last_close_a_paused_one_from_its_first() -> None:
    pace = Pace(least=0.03, most=0.12, target=150)
    pace.observe(5000, 1.0)  # 5,000 msg/s: a 30 ms window
    # the previous batch closed 10 ms before this one's first message (it was being written)
    assert pace.deadline(closed_at=100.0, first=100.01) == pytest.approx(100.03)
    # a first message more than a window after the close (a pause in the stream): the
    # window counts from it, so it waits one window, not none and not more
    assert pace.deadline(closed_at=100.0, first=100.05) == pytest.approx(100.08)
    assert pace.deadline(closed_at=100.0, first=101.0) == pytest.approx(101.03)
