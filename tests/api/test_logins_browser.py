"""The login form in a real headless Chromium against a real uvicorn: a wrong password, a
login, the docs rendering from local assets, a logout; no request leaves 127.0.0.1."""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg
from playwright.sync_api import Browser

from caretaker.users import create_user
from tests.fix_browser import recording_page

PASSWORD = "correct horse battery"


def test_logging_in_and_out_in_chromium(served: str, database: str, browser: Browser) -> None:
    with psycopg.connect(database) as conn:
        create_user(conn, "ann", PASSWORD, role="engineer")
    requested: list[str] = []
    page = recording_page(browser, requested, locale="en-US")
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
    hosts = {urlsplit(u).hostname for u in requested if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}, requested
