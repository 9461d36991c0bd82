"""The console on the demo estate, end to end: the example site loaded as `caretaker demo`
loads it, a day of history backfilled by the real simulator (`caretaker simulate
--backfill`, its own broker login) through the real broker into `caretaker ingest` and
`caretaker rules` (subprocesses), then the simulator live with a fault. In Chromium: the
alarm it raises appears on the open Alarms page without a reload; tickets and complaints
made from the board's forms; runs by guard and day; the wall display; Chinese chart axes;
the README's screenshots; no request leaves 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from playwright.sync_api import Browser, Page
from psycopg.rows import dict_row

from caretaker.users import create_user
from stack.bootstrap import load_demo_site
from tests.fix_browser import recording_page
from tests.fix_servers import Broker
from tests.ingest.helpers import Publisher
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
IMG = ROOT / "docs" / "img"
PASSWORD = "correct horse battery"
VIEWPORT = {"width": 1366, "height": 768}
HISTORY = timedelta(days=1)
# Booster pump 1's bearing fails 20 s into the live run: vibration past the critical level.
FAULT = """name: console-test
description: pump-1 vibration jumps to 13 mm/s 20 s in
faults:
  - {kind: step, devices: [pump-1], set: {vibration: 13.0}, start: 20s}
"""


@dataclass
class Estate:
    database: str
    env: dict[str, str]
    logs: Path


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "stack.cli", *args], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _scalar(database: str, query: str, *params: object) -> object:
    with psycopg.connect(database) as conn:
        row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def _wait_until_ingesting(database: str, mqtt: Broker, procs: list[subprocess.Popen[bytes]],
                          log: Path) -> None:
    """Publish a probe reading until the ingest stored one (it has subscribed by then)."""
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES ('probe', 'Probe')")
    publisher = Publisher(mqtt)
    try:
        def stored() -> bool:
            assert all(p.poll() is None for p in procs), log.read_text(errors="replace")
            publisher.publish("caretaker/v1/probe/devices/probe/telemetry", b'{"probe": 1}')
            return _scalar(database, "SELECT count(*) FROM telemetry WHERE site_id = 'probe'"
                           ) != 0
        wait_until(stored, timeout=90, every=0.5, what="the ingest to store a probe reading")
    finally:
        publisher.close()
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("DELETE FROM sites WHERE id = 'probe'")


@pytest.fixture
def estate(settings_env: dict[str, str], mqtt: Broker, tmp_path: Path) -> Iterator[Estate]:
    """The demo estate with a day of history, the ingest and rules workers still running."""
    database = settings_env["CARETAKER_DATABASE_URL"]
    env = {**os.environ, **settings_env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    start = datetime.now(UTC).replace(second=0, microsecond=0) - HISTORY
    with psycopg.connect(database, row_factory=dict_row) as conn:
        load_demo_site(conn, start)
        create_user(conn, "sam", PASSWORD, role="supervisor", site_id="riverside", language="en")
        create_user(conn, "fay", PASSWORD, role="frontdesk", site_id="riverside",
                    language="en")
        create_user(conn, "li", PASSWORD, role="guard", site_id="riverside", guard_id="g-li",
                    language="en")
        create_user(conn, "wall", PASSWORD, role="viewer", site_id="riverside")
    log = tmp_path / "stack.log"
    workers = [_start(["ingest"], env, log), _start(["rules"], env, log)]
    try:
        _wait_until_ingesting(database, mqtt, workers, log)
        backfill = subprocess.run(
            [sys.executable, "-m", "stack.cli", "simulate", "--backfill", "1d", "--interval",
             "5m", "--start", start.strftime("%Y-%m-%dT%H:%M:%S"), "--truth",
             str(tmp_path / "truth.json")], env=env, cwd=ROOT, capture_output=True,
            timeout=600)
        assert backfill.returncode == 0, backfill.stderr.decode(errors="replace")[-3000:]
        # Everything published is stored and the rules worker has caught up with it.
        last = [-1]

        def settled() -> bool:
            count = _scalar(database, "SELECT count(*) FROM telemetry")
            pending = _scalar(database, "SELECT count(*) FROM ingest_events WHERE kind <> 'scans'")
            done = count == last[0] and pending == 0
            last[0] = int(str(count))
            return done
        wait_until(settled, timeout=300, every=3, what="the backfill to be stored and evaluated")
        assert last[0] > 18 * 200  # a day of readings every 5 minutes
        # The patrol engine has walked the history: runs classified, some visits on time.
        wait_until(lambda: _scalar(database, "SELECT count(*) FROM patrol_visits"
                                           " WHERE status = 'on_time'") != 0,
                 timeout=120, what="a patrol visit classified on time")
        yield Estate(database, env, tmp_path)
    finally:
        for proc in workers:
            _stop(proc)


def _page(browser: Browser, locale: str, requested: list[str]) -> Page:
    return recording_page(browser, requested, locale=locale, viewport=VIEWPORT)


def _log_in(page: Page, served: str, path: str, name: str) -> None:
    page.goto(served + path)
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: urlsplit(url).path == urlsplit(served + path).path)


def _shot(page: Page, name: str, *, full: bool = False) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
    if full:  # a whole page at once: the status line at its foot, not across its middle
        page.evaluate("document.querySelector('footer.status').style.position = 'static'")
    page.screenshot(path=str(IMG / f"console-{name}.png"), full_page=full)


def _local_only(requested: list[str]) -> None:
    hosts = {urlsplit(u).hostname for u in requested if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}, requested


def test_the_demo_estate_live_in_chromium(served: str, estate: Estate, browser: Browser,
                                          tmp_path: Path) -> None:
    requested: list[str] = []
    page = _page(browser, "en-US", requested)
    _log_in(page, served, "/alarms", "sam")
    page.evaluate("window.notReloaded = true")
    assert "Pump vibration" not in page.locator("#active-alarms").inner_text()

    # The simulator goes live; its fault becomes an alarm the open page shows by itself.
    scenario = tmp_path / "fault.yaml"
    scenario.write_text(FAULT)
    live = _start(["simulate", "--scenario", str(scenario), "--interval", "2s", "--duration",
                   "10m"], estate.env, estate.logs / "simulate.log")
    try:
        raised = wait_until(lambda: _scalar(
            estate.database, "SELECT raised_at FROM alarms WHERE device_id = 'pump-1'"
            " AND rule_id = 'pump-vibration' AND state <> 'cleared'"), timeout=120,
            what="the simulated fault to raise an alarm")
        seen = time.monotonic()
        page.wait_for_selector("#active-alarms >> text=Pump vibration", timeout=15000)
        assert time.monotonic() - seen < 12  # within a poll or two of being raised
        assert page.evaluate("window.notReloaded") is True
        assert isinstance(raised, datetime)
        _shot(page, "alarms")

        # The work order the alarm opened, then a manual ticket from the board's form.
        wait_until(lambda: _scalar(estate.database, "SELECT count(*) FROM work_orders") != 0,
                 timeout=60, what="the alarm to open a work order")
        page.click("nav.pages >> text=Work orders")
        page.wait_for_selector("article[data-work-order]")
        due = page.locator("article[data-work-order] .due .tick").first
        before = due.inner_text()
        page.wait_for_function("t => document.querySelector("
                               "'article[data-work-order] .due .tick').textContent !== t",
                               arg=before, timeout=5000)  # the countdown ticks by itself
        page.click("#new-work-order summary")
        form = page.locator("#new-work-order form")
        form.locator("select[name=category]").select_option("公区维修")
        form.locator("select[name=urgency]").select_option("急修")
        form.locator("select[name=zone]").select_option("car-park")
        form.locator("input[name='reporter.name']").fill("陈女士")
        form.locator("input[name='reporter.unit']").fill("3-1201")
        form.locator("input[name='reporter.phone']").fill("13812345678")
        form.locator("textarea[name=description]").fill("B2 车库入口积水, 排水沟堵塞")
        form.locator("button[type=submit]").click()
        page.wait_for_selector("section[data-state=open] >> text=排水沟堵塞")
        page.click("#new-complaint summary")
        form = page.locator("#new-complaint form")
        form.locator("select[name=category]").select_option("秩序管理")
        form.locator("input[name='complainant.name']").fill("王先生")
        form.locator("textarea[name=description]").fill("楼上装修夜间 22:30 仍在施工")
        form.locator("button[type=submit]").click()
        page.wait_for_selector("#complaints >> text=order and security")
        page.on("dialog", lambda dialog: dialog.accept("已约谈装修方, 施工时间限于白天"))
        page.locator('#complaints button[data-step="c-answer"]').first.click()
        page.wait_for_selector("#follow-ups form.visit-form")
        visit = page.locator("#follow-ups form.visit-form").first
        visit.locator("select[name=outcome]").select_option("unreachable")
        visit.locator("input[name=opinion]").fill("no answer, will call again")
        visit.locator("button[type=submit]").click()
        page.wait_for_selector("#follow-ups >> text=1 attempt(s) unanswered")
        _shot(page, "work-orders", full=True)

        page.goto(served + "/")
        page.wait_for_selector('tr[data-device="pump-1"].alarmed')
        _shot(page, "plant")
        page.goto(served + "/devices/pump-1")
        page.wait_for_selector('.chart[data-metric="vibration"] .uplot canvas', timeout=20000)
        _shot(page, "device", full=True)
        page.goto(served + "/patrol")
        page.wait_for_selector("#next-due tbody tr")
        _shot(page, "patrol")
        page.click("#runs-link")
        page.wait_for_selector("section.guard-day .visit[data-status]")
        page.click("text=Day before")  # a whole day of the history
        page.wait_for_url(lambda url: "day=" in url)
        page.wait_for_selector("section.guard-day .visit[data-status]")
        assert page.locator('.visit[data-status="on_time"]').count() > 0
        _shot(page, "runs", full=True)
        page.goto(served + "/inspections")
        _shot(page, "inspections")
        page.goto(served + "/reports")
        page.wait_for_selector("#kpis tr[data-kpi]")
        _shot(page, "reports")
        page.goto(served + "/handover")
        _shot(page, "handover")
        _local_only(requested)

        # A guard's view of the runs: their own only.
        guard = _page(browser, "en-US", requested)
        _log_in(guard, served, "/patrol/runs", "li")
        guards = set(guard.locator("section.guard-day").evaluate_all(
            "els => els.map(e => e.dataset.guard)"))
        assert guards <= {"g-li"}
        guard.close()

        # The wall display, for the office's viewer login, in Chinese.
        wall = _page(browser, "zh-CN", requested)
        _log_in(wall, served, "/wall", "wall")
        assert wall.locator("nav.pages").count() == 0
        wall.wait_for_selector("#wall-alarms >> text=Pump vibration")
        wall.screenshot(path=str(IMG / "console-wall.png"))
        wall.goto(served + "/")
        wall.wait_for_selector('tr[data-device="pump-1"]')
        wall.screenshot(path=str(IMG / "console-plant-zh.png"))
        wall.goto(served + "/devices/pump-1?range=24h")
        wall.wait_for_selector('.chart[data-metric="vibration"] .uplot canvas', timeout=20000)
        labels = wall.evaluate("window.consoleCharts[0].axes[0]._values")
        assert labels and not any(re.search("[A-Za-z]", label) for label in labels), labels
        assert any("月" in label for label in labels), labels  # the date on a day's first tick
        wall.screenshot(path=str(IMG / "console-device-zh.png"), full_page=True)
        _local_only(requested)
    finally:
        _stop(live)
