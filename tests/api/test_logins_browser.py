"""The login form in a real headless Chromium against a real uvicorn: a wrong password, a
login, the docs rendering from local assets, a logout; no request leaves 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
import uvicorn
from playwright.sync_api import Request, sync_playwright

from caretaker.servers import free_port
from caretaker.settings import Settings
from caretaker.users import create_user
from stack.app import api as create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "correct horse battery"


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


def test_logging_in_and_out_in_chromium(served: str, database: str) -> None:
    with psycopg.connect(database) as conn:
        create_user(conn, "ann", PASSWORD, role="engineer")
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(locale="en-US")

            def record(request: Request) -> None:
                requested.append(request.url)

            page.on("request", record)
            page.goto(served + "/")
            assert page.url == served + "/login"
            assert page.locator("html").get_attribute("lang") == "en"
            page.fill("input[name=username]", "ann")
            page.fill("input[name=password]", "not it")
            page.click("button[type=submit]")
            assert page.locator(".error").inner_text() == "Wrong user name or password."

            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(served + "/")
            assert page.locator("#who").inner_text() == "Logged in as ann"
            cookie = next(c for c in page.context.cookies() if c["name"] == "caretaker_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

            # The docs render (Swagger UI's script ran) with nothing from the internet.
            page.goto(served + "/api/v1/docs")
            page.wait_for_selector(".swagger-ui .info .title", timeout=20000)
            assert "Caretaker" in page.locator(".swagger-ui .info .title").inner_text()

            page.goto(served + "/")
            page.click("text=Log out")
            page.wait_for_url(served + "/login")
            page.goto(served + "/")
            assert page.url == served + "/login"
        finally:
            browser.close()
    hosts = {urlsplit(u).hostname for u in requested if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}, requested
