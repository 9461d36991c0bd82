"""The console in a real headless Chromium against a real uvicorn at 1366×768: log in, the
Plant, Device and Alarms pages with the example site's data, an alarm acknowledged and
cleared from the page, a new alarm appearing without a reload, Chinese; no request leaves
127.0.0.1. (The README's screenshots are taken on the demo estate: test_demo_estate.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import psycopg
import pytest
from playwright.sync_api import Browser, Page
from psycopg.rows import dict_row

from caretaker.users import create_user
from tests.console.seed import SITE, add_alarm, seed
from tests.fix_browser import recording_page
from tickets import work_orders

PASSWORD = "correct horse battery"
VIEWPORT = {"width": 1366, "height": 768}


@pytest.fixture
def estate(database: str) -> str:
    with psycopg.connect(database, row_factory=dict_row) as conn:
        seed(conn, datetime.now(UTC))
        conn.execute("INSERT INTO sites (id, name) VALUES ('elsewhere', 'Elsewhere')")
        create_user(conn, "eve", PASSWORD, role="engineer", site_id=SITE)
        create_user(conn, "sam", PASSWORD, role="supervisor", site_id=SITE, language="en")
    return database


def _page(browser: Browser, locale: str, requested: list[str]) -> Page:
    return recording_page(browser, requested, locale=locale, viewport=VIEWPORT)


def _log_in(page: Page, served: str, path: str = "/", name: str = "eve") -> None:
    page.goto(served + path)
    assert urlsplit(page.url).path == "/login"
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: urlsplit(url).path == path)


def _no_sideways_scroll(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]


def test_plant_device_and_alarms_in_chromium(served: str, estate: str,
                                             browser: Browser) -> None:
    requested: list[str] = []
    page = _page(browser, "en-US", requested)
    _log_in(page, served)
    # The site's language (Chinese) until the user picks English, which is kept for them.
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.click("form.lang button")
    page.wait_for_selector('html[lang="en"]')
    rows = page.locator("table.devices tbody tr")
    assert rows.first.get_attribute("data-device") == "pump-1"
    assert page.locator('tr[data-device="pump-1"] svg.spark polyline').count() == 1
    assert "Pump vibration high" in page.locator(".alarm-strip").inner_text()
    assert page.locator("#who").inner_text() == "eve"
    _no_sideways_scroll(page)

    page.click('tr[data-device="pump-1"] a')
    page.wait_for_selector('.chart[data-metric="vibration"] .uplot canvas', timeout=20000)
    assert page.locator(".chart .uplot").count() == 2  # vibration and flow have readings
    assert "Check pump 1 bearings" in page.locator("table.tickets").inner_text()
    _no_sideways_scroll(page)

    page.click("nav.pages >> text=Alarms")
    page.wait_for_selector("#active-alarms")
    page.evaluate("window.notReloaded = true")
    page.click('button[data-alarm-action="acknowledge"]')
    page.wait_for_selector('button[data-alarm-action="acknowledge"]', state="detached")
    assert "acknowledged" in page.locator("#active-alarms").inner_text()

    # A new alarm, raised elsewhere, appears on the open page without a reload.
    with psycopg.connect(estate, row_factory=dict_row) as conn:
        add_alarm(conn, "pump-2", "pump-bearing-temp", "critical",
                  "Pump bearing temperature high 85 degC",
                  raised=datetime.now(UTC) - timedelta(seconds=2))
    page.wait_for_selector("#active-alarms >> text=Pump bearing temperature high",
                           timeout=15000)
    assert page.evaluate("window.notReloaded") is True

    page.on("dialog", lambda dialog: dialog.accept())
    first = page.locator("#active-alarms tbody tr").first
    assert "bearing" in first.inner_text()  # critical comes first
    first.locator('button[data-alarm-action="clear"]').click()
    page.wait_for_selector("#active-alarms >> text=Pump bearing temperature high",
                           state="detached")
    assert "Pump bearing temperature high" in page.locator("#recent-alarms").inner_text()
    hosts = {urlsplit(u).hostname for u in requested if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}, requested


def test_the_console_in_chinese(served: str, estate: str, browser: Browser) -> None:
    requested: list[str] = []
    page = _page(browser, "zh-CN", requested)
    _log_in(page, served)
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    nav = page.locator("nav.pages").inner_text()
    assert "设备设施" in nav and "告警" in nav
    assert "最新读数" in page.locator("table.devices thead").inner_text()
    page.click("#who")
    assert page.locator("#role").inner_text() == "engineer"
    assert page.locator("#site").inner_text() == SITE
    # A site-scoped user: another site's pages are not there for them.
    response = page.goto(served + "/?site=elsewhere")
    assert response is not None and response.status == 404
    assert page.locator("select[name=site]").count() == 0  # no site to choose
    page.goto(served + "/devices/pump-1?range=7d")
    page.wait_for_selector('.chart[data-metric="vibration"] .uplot canvas', timeout=20000)
    assert "本时段告警" in page.content()
    hosts = {urlsplit(u).hostname for u in requested if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}, requested


def test_a_work_order_from_open_to_closed_on_the_board(served: str, estate: str,
                                                      browser: Browser) -> None:
    requested: list[str] = []
    page = _page(browser, "en-US", requested)
    _log_in(page, served, "/work-orders", name="sam")
    card = page.locator('article[data-work-order="1"]')
    assert "Check pump 1 bearings" in card.inner_text()
    assert "Response overdue by" in card.inner_text()  # respond_by was "now" at seeding
    page.on("dialog", lambda dialog: dialog.accept("eng-zhao"))
    card.locator('button[data-step="assign"]').click()
    page.wait_for_selector('article[data-work-order="1"] >> text=eng-zhao')
    for step, column in (("acknowledge", "acknowledged"), ("start", "in_progress"),
                         ("resolve", "resolved")):
        page.locator(f'article[data-work-order="1"] button[data-step="{step}"]').click()
        page.wait_for_selector(f'section[data-state="{column}"] article[data-work-order="1"]')
    page.locator('article[data-work-order="1"] button[data-step="close"]').click()
    page.wait_for_selector('#closed-work-orders >> text=Check pump 1 bearings')
    assert page.locator('article[data-work-order="1"]').count() == 0
    _no_sideways_scroll(page)

    # A form opened on the board stays open when the live refresh brings a new ticket.
    page.click("#new-work-order summary")
    page.evaluate("window.notReloaded = true")
    with psycopg.connect(estate, row_factory=dict_row) as conn:
        work_orders.open_manual(conn, site_id=SITE, category="公区维修", urgency="零修",
                                channel="phone", description="Lobby light out",
                                reporter=work_orders.Person(), now=datetime.now(UTC),
                                actor="front desk")
    page.wait_for_selector("section[data-state=open] >> text=Lobby light out", timeout=15000)
    assert page.locator("#new-work-order").get_attribute("open") is not None
    assert page.evaluate("window.notReloaded") is True
    hosts = {urlsplit(u).hostname for u in requested if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}, requested


def test_gaps_acknowledged_together_on_patrol_now(served: str, estate: str,
                                                 browser: Browser) -> None:
    requested: list[str] = []
    page = _page(browser, "en-US", requested)
    _log_in(page, served, "/patrol", name="sam")
    assert page.locator("#open-gaps tr[data-gap]").count() == 3
    assert page.locator("#next-due tbody tr").count() == 6  # one per schedule
    page.check("#all-gaps")
    page.fill("#gap-note", "guard walked the route late")
    page.click("text=Acknowledge selected")
    page.wait_for_selector("#open-gaps >> text=No open gaps.")
    _no_sideways_scroll(page)

    page.click("nav.pages >> text=KPIs & reports")
    page.wait_for_selector("#kpis tr[data-kpi]")
    assert page.locator("#kpis tr[data-kpi]").count() == 13
    _no_sideways_scroll(page)

    page.click("nav.pages >> text=Inspections")
    page.wait_for_selector("#rounds-due tr[data-run]")
    assert "seal: dripping" in page.locator("#findings").inner_text()
    hosts = {urlsplit(u).hostname for u in requested if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}, requested


def test_a_handover_sheet_signed_by_both_sides(served: str, estate: str,
                                              browser: Browser) -> None:
    requested: list[str] = []
    page = _page(browser, "en-US", requested)
    _log_in(page, served, "/handover", name="sam")
    sheet = page.locator("article[data-handover]").first
    assert "Active alarms: " in sheet.inner_text() and "awaiting signatures" in sheet.inner_text()
    page.on("dialog", lambda dialog: dialog.accept("pump 1 vibrating, watch it"))
    sheet.locator('button[data-step="sign-outgoing"]').click()
    page.wait_for_selector('tr[data-side="outgoing"] >> text=pump 1 vibrating, watch it')
    # One person signs one side only: the API refuses the other and the page says so.
    page.locator('button[data-step="sign-incoming"]').first.click()
    page.wait_for_selector("#action-error:not([hidden])")
    _no_sideways_scroll(page)
    hosts = {urlsplit(u).hostname for u in requested if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}, requested


def test_locked_out_after_failures_and_writes_refused_without_the_token(
        served: str, estate: str, browser: Browser) -> None:
    requested: list[str] = []
    page = _page(browser, "en-US", requested)
    page.goto(served + "/")
    for _ in range(5):  # login_max_failures
        page.fill("input[name=username]", "eve")
        page.fill("input[name=password]", "not the password")
        page.click("button[type=submit]")
        page.wait_for_selector(".error")
    page.fill("input[name=username]", "eve")
    page.fill("input[name=password]", PASSWORD)  # right, but too late
    page.click("button[type=submit]")
    assert "Too many failed attempts" in page.locator(".error").inner_text()
    assert urlsplit(page.url).path == "/login"

    other = _page(browser, "en-US", requested)
    _log_in(other, served, "/alarms", name="sam")
    post = """async ([url, token]) => {
        const headers = {"Content-Type": "application/json"};
        if (token) headers["X-CSRF-Token"] = token;
        const r = await fetch(url, {method: "POST", credentials: "same-origin", headers,
                                    body: "{}"});
        return [r.status, (await r.json()).error?.code || null];
    }"""
    url = other.locator('button[data-alarm-action="acknowledge"]').first.get_attribute(
        "data-post")
    assert other.evaluate(post, [url, None]) == [403, "csrf"]
    token = other.locator('meta[name="csrf-token"]').get_attribute("content")
    assert other.evaluate(post, [url, "not-the-token"]) == [403, "csrf"]
    assert other.evaluate(post, [url, token])[0] == 200
    hosts = {urlsplit(u).hostname for u in requested if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}, requested
