"""Shared pieces of the reports tests: KPI values to render, PDF text, the example site."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from pypdf import PdfReader

from reports.kpis import NAMES, Kpi
from reports.periods import Week
from reports.weekly import Site, WeeklyData, kind_of


def kpis_of(scale: float) -> dict[str, Kpi]:
    """A full set of KPI values (ratios scaled), as the library returns them."""
    out: dict[str, Kpi] = {}
    for name in NAMES:
        kind = kind_of(name)
        if kind == "ratio":
            out[name] = Kpi(round(0.9 * scale, 4), 9, 10, 0.99, {
                "by_route": {"night-perimeter": {"value": 0.8, "numerator": 8,
                                                 "denominator": 10}}}
                if name == "patrol_completion" else {})
        elif kind == "duration":
            out[name] = Kpi(5400.0 * scale, 5400.0, 1)
        else:
            out[name] = Kpi(7.0, 7, 20, None, {"ages": {"lt_1d": 3, "1d_3d": 2, "3d_7d": 1,
                                                         "gt_7d": 1}, "overdue": 2}
                            if name == "backlog" else {})
    out["satisfaction"] = Kpi(None, 0, 0, 0.98)  # nothing to count
    return out


def sample_week() -> WeeklyData:
    """A week of the example site rendered from KPI values (no database)."""
    week = Week(2026, 48)
    start, end = week.bounds("Asia/Shanghai")
    trend = [(week.shift(-i), kpis_of(1 - i * 0.02)) for i in range(5, -1, -1)]
    return WeeklyData(
        site=Site("riverside", "Riverside Gardens 江畔花园", "Asia/Shanghai"), week=week,
        start=start, end=end, generated_at=datetime(2026, 11, 30, 0, 0, tzinfo=UTC),
        kpis=trend[-1][1], previous=trend[-2][1], trend=trend,
        work_orders_by_source=[{"key": "alarm", "opened": 4, "resolved": 3, "closed": 2,
                                "overdue": 1}],
        work_orders_by_category=[{"key": "设备", "opened": 4, "resolved": 3, "closed": 2,
                                  "overdue": 1}],
        complaint_list=[{"number": "TS-2026-0001", "grade": "一般", "category": "设备管理",
                         "state": "open", "complainant_name": "张**",
                         "complainant_unit": "3-1201", "opened_at": start, "answer_by": end,
                         "answered_at": None, "closed_at": None, "resolution": None}])


def pdf_text(pdf: bytes) -> str:
    """Every page's text of a PDF, joined (whitespace removed: CJK text has none)."""
    reader = PdfReader(io.BytesIO(pdf))
    return "".join("".join((page.extract_text() or "").split()) for page in reader.pages)


def squeeze(text: str) -> str:
    return "".join(text.split())


def load_example(conn: Any, now: datetime) -> None:
    """Load the packaged example site (Riverside Gardens) through the composition root."""
    from caretaker.site_config import example_document
    from stack.app import load_site

    load_site(conn, example_document(), now=now)
    conn.commit()
