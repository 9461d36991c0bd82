"""Sparkline points: scaled into the box, gaps skipped, a flat line in the middle."""

from __future__ import annotations

from api.console.spark import points


def test_scales_into_the_box_highest_at_the_top() -> None:
    assert points([0.0, 10.0], width=100, height=20, pad=0) == "0.0,20.0 100.0,0.0"


def test_missing_values_are_skipped_not_drawn_as_zero() -> None:
    assert points([1.0, None, 3.0], width=10, height=10, pad=0) == "0.0,10.0 10.0,0.0"


def test_flat_and_empty_series() -> None:
    assert points([5.0, 5.0], width=10, height=10, pad=0) == "0.0,5.0 10.0,5.0"
    assert points([None, None]) == ""
    assert points([]) == ""
