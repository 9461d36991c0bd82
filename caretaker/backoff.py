"""The one back-off: how long to wait before attempt n+1 after n failures in a row."""

from __future__ import annotations


def backoff(failures: int, *, first: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait after `failures` failures in a row: first, 2×first, 4×first, … ≤ cap."""
    if failures <= 0:
        return 0.0
    return float(min(cap, first * 2.0 ** min(failures - 1, 62)))
