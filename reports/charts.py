"""Charts for the reports: matplotlib (Agg, no display) drawn as inline SVG.

Text is drawn in Noto Sans CJK so Chinese labels show; the glyphs become SVG paths, so the
PDF needs no font for them. matplotlib's object API (no pyplot) keeps charts thread-safe.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Sequence
from functools import cache
from typing import Any

import matplotlib

matplotlib.use("Agg")

from markupsafe import Markup  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.axis import Axis  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK TC")
APT_PACKAGE = "fonts-noto-cjk"
COLOURS = ("#1f5fa8", "#e07b24", "#2a9d5b", "#c0392b", "#7d5ba6", "#8c6d46", "#d35aa0",
           "#5f6b73")
WIDTH_IN = 6.8  # the text width of an A4 page with the reports' margins


class FontMissing(RuntimeError):
    """No CJK font for Chinese chart labels."""


@cache
def cjk_font() -> str:
    """The family name of an installed Noto Sans CJK font; FontMissing naming the package."""
    for family in CJK_FAMILIES:
        try:
            font_manager.findfont(font_manager.FontProperties(family=family),
                                  fallback_to_default=False)
        except ValueError:
            continue
        return family
    raise FontMissing(f"no Noto Sans CJK font for Chinese chart labels: install Debian's "
                      f"{APT_PACKAGE} package (apt-get install {APT_PACKAGE}, as "
                      f"scripts/setup.sh does)")


_numbers = itertools.count(1)


def _style() -> Any:
    """The charts' settings: the CJK font for every label, glyphs drawn as paths."""
    return matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "caretaker",
                                  "font.family": [cjk_font()], "font.size": 9})


def _figure(height: float) -> Figure:
    fig = Figure(figsize=(WIDTH_IN, height), dpi=72)
    fig.set_layout_engine("constrained")
    return fig


def _svg(fig: Figure) -> Markup:
    """The figure as an <svg> element to put inline in HTML (no XML prolog, no fixed ids)."""
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    text = text[text.index("<svg"):]
    # several charts on one page: keep their element ids apart
    suffix = f"c{next(_numbers)}"
    text = re.sub(r'id="([^"]+)"', rf'id="\1-{suffix}"', text)
    text = re.sub(r'#([A-Za-z_][\w.-]*)\)', rf'#\1-{suffix})', text)
    text = re.sub(r'xlink:href="#([^"]+)"', rf'xlink:href="#\1-{suffix}"', text)
    return Markup(text)


def _trend_lines(weeks: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
                *, title: str = "") -> Markup:
    """Ratios (0..1) over weeks, one line per series; gaps where a week has no value."""
    fig = _figure(2.8)
    ax = fig.add_subplot()
    for i, (label, values) in enumerate(series):
        ys = [float("nan") if v is None else v for v in values]
        ax.plot(list(weeks), ys, marker="o", markersize=3, linewidth=1.4, label=label,
                color=COLOURS[i % len(COLOURS)])
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", linewidth=0.4, alpha=0.6)
    ax.set_title(title)
    if series:
        ax.legend(fontsize=7, ncols=2, loc="lower left", frameon=False)
    return _svg(fig)


def _bars(labels: Sequence[str], values: Sequence[float], *, title: str = "",
         ratio: bool = False, horizontal: bool = False, colour: int = 0) -> Markup:
    """One bar per label (ratios 0..1 shown as percentages when `ratio`)."""
    fig = _figure(max(1.6, 0.28 * len(labels) + 0.9) if horizontal else 2.4)
    ax = fig.add_subplot()
    axis: Axis
    if horizontal:
        ax.barh(list(labels)[::-1], list(values)[::-1], color=COLOURS[colour % len(COLOURS)])
        axis = ax.xaxis
    else:
        ax.bar(list(labels), list(values), color=COLOURS[colour % len(COLOURS)])
        axis = ax.yaxis
        if len(labels) > 5:
            ax.tick_params(axis="x", labelrotation=30)
    if ratio:
        axis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        (ax.set_xlim if horizontal else ax.set_ylim)(0, 1.05)
    ax.grid(axis="x" if horizontal else "y", linewidth=0.4, alpha=0.6)
    ax.set_title(title)
    return _svg(fig)


def _grouped_bars(groups: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], *,
                 title: str = "") -> Markup:
    """Bars by group, one colour per series (e.g. opened / closed per source)."""
    fig = _figure(2.4)
    ax = fig.add_subplot()
    width = 0.8 / max(len(series), 1)
    for i, (label, values) in enumerate(series):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, list(values), width=width, label=label, color=COLOURS[i % len(COLOURS)])
    ax.set_xticks(range(len(groups)), list(groups))
    ax.grid(axis="y", linewidth=0.4, alpha=0.6)
    ax.set_title(title)
    if series:
        ax.legend(fontsize=7, frameon=False)
    return _svg(fig)


def trend_lines(weeks: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
                *, title: str = "") -> Markup:
    """Ratios (0..1) over weeks, one line per series; gaps where a week has no value."""
    with _style():
        return _trend_lines(weeks, series, title=title)


def bars(labels: Sequence[str], values: Sequence[float], *, title: str = "",
         ratio: bool = False, horizontal: bool = False, colour: int = 0) -> Markup:
    """One bar per label (ratios 0..1 shown as percentages when `ratio`)."""
    with _style():
        return _bars(labels, values, title=title, ratio=ratio, horizontal=horizontal,
                     colour=colour)


def grouped_bars(groups: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], *,
                 title: str = "") -> Markup:
    """Bars by group, one colour per series (e.g. opened / closed per source)."""
    with _style():
        return _grouped_bars(groups, series, title=title)
