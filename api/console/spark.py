"""Sparklines as inline SVG paths, drawn on the server (no script, a few hundred bytes)."""

from __future__ import annotations

from collections.abc import Sequence

WIDTH = 120
HEIGHT = 28


def points(values: Sequence[float | None], *, width: int = WIDTH, height: int = HEIGHT,
           pad: float = 2.0) -> str:
    """An SVG polyline's `points` for the values, left to right, scaled to fit the box;
    missing values are skipped; a flat series sits in the middle; "" when nothing to draw."""
    known = [(i, v) for i, v in enumerate(values) if v is not None]
    if not known:
        return ""
    low = min(v for _, v in known)
    high = max(v for _, v in known)
    span = high - low
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    out = []
    for i, v in known:
        y = height / 2 if span == 0 else pad + (high - v) / span * (height - 2 * pad)
        out.append(f"{pad + i * step:.1f},{y:.1f}")
    return " ".join(out)
