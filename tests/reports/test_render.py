"""Rendering without a database: both languages, HTML and PDF, offline; the pure periods."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from caretaker.errors import Invalid
from reports import charts, i18n, weekly
from reports.periods import Week, due_week, shift_changes
from reports.render import html_to_pdf
from tests.reports.helpers import pdf_text, sample_week, squeeze

ZH_NAMES = ("零修急修及时率", "响应及时率", "维修服务回访率", "满意率", "有效投诉处理率",
            "设备完好率", "巡更完成率", "设备巡检完成率", "积压工单", "重复故障")


@pytest.fixture(scope="module")
def rendered() -> dict[str, tuple[str, bytes]]:
    data = sample_week()
    return {lang: weekly.render(data, lang) for lang in ("zh-CN", "en")}


def test_chinese_pdf_has_the_kpi_names_and_values(rendered: dict[str, tuple[str, bytes]]
                                                  ) -> None:
    html, pdf = rendered["zh-CN"]
    text = pdf_text(pdf)
    for name in ZH_NAMES:
        assert name in text, name
        assert name in html
    assert "巡检周报" in text and "江畔花园" in text
    assert "90.0%" in text  # repair timeliness this week
    assert "无可统计" in text  # satisfaction: nothing to count, not 0 %
    assert "张**" in text  # the complainant's name masked


def test_english_report(rendered: dict[str, tuple[str, bytes]]) -> None:
    html, pdf = rendered["en"]
    text = pdf_text(pdf)
    assert "Weeklyinspectionreport" in text
    assert "Repairtimeliness" in text and "nothingtocount" in text
    assert "零修急修及时率" not in text
    assert 'lang="en"' in html and "<svg" in html  # charts inline


def test_the_same_values_in_html_and_pdf(rendered: dict[str, tuple[str, bytes]]) -> None:
    data = sample_week()
    for lang in ("zh-CN", "en"):
        html, pdf = rendered[lang]
        text = pdf_text(pdf)
        for name, k in data.kpi_table().items():
            if weekly.kind_of(name) == "ratio" and k["value"] is not None:
                shown = squeeze(i18n.format_percent(k["value"], lang))
                assert shown in squeeze(html) and shown in text, (lang, name)


def test_no_network_while_rendering() -> None:
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        pdf = html_to_pdf(f'<html><head><link rel="stylesheet" href="{url}/s.css"></head>'
                          f'<body><img src="{url}/i.png"><p>离线 offline</p></body></html>')
    finally:
        server.shutdown()
        server.server_close()
    assert hits == []
    assert "离线" in pdf_text(pdf)


def test_catalogue_compiles_in_memory_and_refuses_unknown_languages() -> None:
    assert i18n.translations("zh-CN").gettext("Weekly inspection report") == "巡检周报"
    assert i18n.translations("en").gettext("Weekly inspection report") == \
        "Weekly inspection report"
    with pytest.raises(Invalid):
        i18n.translations("fr")


def test_chart_font_is_cjk() -> None:
    assert "CJK" in charts.cjk_font()
    svg = charts.bars(["生活泵1#"], [0.5], ratio=True, title="设备可用率")
    assert svg.startswith("<svg") and "<path" in svg


def test_weeks() -> None:
    assert str(Week.parse("2026-W48")) == "2026-W48"
    assert Week.parse("2026-W48").monday.isoformat() == "2026-11-23"
    with pytest.raises(Invalid):
        Week.parse("2026-W54")
    with pytest.raises(Invalid):
        Week.parse("48")
    start, end = Week(2026, 48).bounds("Asia/Shanghai")
    assert start == datetime(2026, 11, 22, 16, 0, tzinfo=UTC)
    assert (end - start).days == 7
    # across a daylight-saving change the week has 167 hours
    start, end = Week.parse("2026-W13").bounds("Europe/Berlin")
    assert (end - start).total_seconds() == 167 * 3600


def test_due_week_and_catch_up() -> None:
    tz, monday_8 = "Asia/Shanghai", time(8, 0)
    # Monday 30 Nov 2026 07:59 Shanghai: week 48's report is not due yet; 47's is
    before = datetime(2026, 11, 29, 23, 59, tzinfo=UTC)
    assert due_week(before, tz, weekday=0, at=monday_8) == Week(2026, 47)
    at = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # 08:00 Shanghai
    assert due_week(at, tz, weekday=0, at=monday_8) == Week(2026, 48)
    # down from Sunday to Wednesday: week 48 is made on Wednesday
    assert due_week(datetime(2026, 12, 2, 3, 0, tzinfo=UTC), tz, weekday=0,
                    at=monday_8) == Week(2026, 48)


def test_shift_changes() -> None:
    tz, shifts = "Asia/Shanghai", [time(8, 0), time(20, 0)]
    now = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)  # 20:30 Shanghai
    last, before = shift_changes(now, tz, shifts)
    assert last == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert before == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    last, before = shift_changes(datetime(2026, 11, 23, 12, 0, tzinfo=UTC), tz, [time(8, 0)])
    assert (last - before).days == 1
