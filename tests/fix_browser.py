"""Fixtures for tests in a real browser: the API on a real uvicorn, Debian's headless
Chromium through Playwright, and pages that record every request they make (to prove none
leaves 127.0.0.1)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from caretaker.servers import free_port
from caretaker.settings import Settings
from stack.app import api as create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def served(settings_env: dict[str, str]) -> Iterator[str]:
    """The API on a real uvicorn, on a free port: its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(Settings()), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def pw() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser(pw: Playwright) -> Iterator[Browser]:
    """Debian's headless Chromium (CI installs it with the set-up script)."""
    chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    try:
        yield chromium
    finally:
        chromium.close()


def recording_page(browser: Browser, requested: list[str], **options: Any) -> Page:
    """A new page (with `new_page` options: locale, viewport...) that appends the URL of every
    request it makes to `requested`."""
    page = browser.new_page(**options)
    page.on("request", lambda request: requested.append(request.url))
    return page
