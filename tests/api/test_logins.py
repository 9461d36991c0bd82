"""People's logins through the real API: the form, the session cookie, lock-out, expiry,
CSRF, scoping by site, disabled users, and the API docs served without the internet."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from http.cookies import SimpleCookie

import psycopg
import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from caretaker.clock import FakeClock
from caretaker.settings import Settings
from caretaker.users import create_user, set_disabled
from stack.app import api as create_app

API = "/api/v1"
PASSWORD = "correct horse battery"


@pytest.fixture
def add_user(database: str) -> Callable[..., None]:
    """add_user("ann", role="supervisor", site="a"): a user with PASSWORD."""

    def add(name: str, *, role: str = "supervisor", site: str | None = None,
            guard: str | None = None, password: str = PASSWORD) -> None:
        with psycopg.connect(database) as conn:
            create_user(conn, name, password, role=role, site_id=site, guard_id=guard)

    return add


def _hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden field {name} in the page"
    return found.group(1)


def login(client: TestClient, name: str, password: str, *, next_: str = "/",
          lang: str = "") -> Response:
    """Fill in and send the login form as a browser would (not following the redirect)."""
    form = client.get("/login", params={"next": next_})
    assert form.status_code == 200, form.text
    return client.post("/login", data={"username": name, "password": password,
                                       "csrf_token": _hidden(form.text, "csrf_token"),
                                       "next": _hidden(form.text, "next"), "lang": lang},
                       follow_redirects=False)


def csrf_of(client: TestClient) -> str:
    """The session's CSRF token, as the start page gives it to its forms."""
    page = client.get("/")
    assert page.status_code == 200, page.text
    return _hidden(page.text, "csrf_token")


def _set_cookie(response: Response, name: str) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    return headers[0]


def _error(response: Response) -> str:
    found = re.search(r'<p class="error" role="alert">([^<]*)</p>', response.text)
    assert found, response.text
    return found.group(1)


def test_a_login_sets_an_httponly_samesite_cookie_and_the_start_page_says_who(
        client: TestClient, add_user: Callable[..., None]) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    add_user("ann", role="engineer")
    r = login(client, "ann", PASSWORD)
    assert r.status_code == 303 and r.headers["location"] == "/"
    header = _set_cookie(r, "caretaker_session")
    cookie = SimpleCookie(header)["caretaker_session"]
    assert cookie["httponly"] and cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/" and not cookie["secure"]
    assert len(cookie.value) >= 40
    page = client.get("/")
    assert page.status_code == 200 and "ann" in page.text and "engineer" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    # The same cookie is a principal for the API.
    assert client.get(f"{API}/sites").status_code == 200
    # The session id is stored hashed only.
    assert cookie.value not in client.get("/").text


def test_wrong_password_and_unknown_user_get_the_same_answer(
        client: TestClient, add_user: Callable[..., None]) -> None:
    add_user("ann")
    wrong = login(client, "ann", "not the password")
    unknown = login(client, "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert _error(wrong) == _error(unknown)
    assert "caretaker_session" not in wrong.headers.get("set-cookie", "")
    assert client.get(f"{API}/sites").status_code == 401


def test_a_name_is_locked_out_after_five_failures_and_unlocked_after_the_period(
        client: TestClient, add_user: Callable[..., None], api_clock: FakeClock) -> None:
    add_user("ann")
    for _ in range(5):
        assert login(client, "ann", "guess").status_code == 401
        assert login(client, "ghost", "guess").status_code == 401
    # Locked now: even the right password is refused, and unknown names alike.
    locked = login(client, "ann", PASSWORD)
    assert locked.status_code == 429
    ghost = login(client, "ghost", "guess")
    assert ghost.status_code == 429 and _error(ghost) == _error(locked)
    api_clock.advance(minutes=14, seconds=59)
    assert login(client, "ann", PASSWORD).status_code == 429
    api_clock.advance(seconds=2)
    assert login(client, "ann", PASSWORD).status_code == 303


def test_failures_spread_out_do_not_lock(client: TestClient, add_user: Callable[..., None],
                                         api_clock: FakeClock) -> None:
    add_user("ann")
    for _ in range(8):
        assert login(client, "ann", "guess").status_code == 401
        api_clock.advance(minutes=16)
    assert login(client, "ann", PASSWORD).status_code == 303


def test_a_client_address_is_locked_out_across_names(
        settings_env: dict[str, str], api_clock: FakeClock,
        add_user: Callable[..., None]) -> None:
    add_user("ann")
    settings = Settings(login_address_max_failures=3)
    with TestClient(create_app(settings, clock=api_clock)) as c:
        for name in ("x1", "x2", "x3"):
            assert login(c, name, "guess").status_code == 401
        assert login(c, "ann", PASSWORD).status_code == 429
        api_clock.advance(minutes=15, seconds=1)
        assert login(c, "ann", PASSWORD).status_code == 303


def test_the_cookie_is_secure_on_https_and_when_the_setting_says_so(
        settings_env: dict[str, str], api_clock: FakeClock,
        add_user: Callable[..., None]) -> None:
    add_user("ann")
    with TestClient(create_app(Settings(), clock=api_clock),
                    base_url="https://testserver") as c:
        r = login(c, "ann", PASSWORD)
        assert SimpleCookie(_set_cookie(r, "caretaker_session"))["caretaker_session"]["secure"]
        assert c.get("/").status_code == 200
    with TestClient(create_app(Settings(session_cookie_secure=True), clock=api_clock)) as c:
        form = c.get("/login")
        assert SimpleCookie(_set_cookie(form, "caretaker_login_csrf"))[
            "caretaker_login_csrf"]["secure"]


def test_logout_ends_the_session_and_needs_the_csrf_token(
        client: TestClient, add_user: Callable[..., None]) -> None:
    add_user("ann")
    login(client, "ann", PASSWORD)
    value = client.cookies["caretaker_session"]
    csrf = csrf_of(client)
    assert client.post("/logout", data={"csrf_token": "wrong"},
                       follow_redirects=False).status_code == 403
    assert client.get(f"{API}/sites").status_code == 200
    out = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert 'caretaker_session=""' in out.headers["set-cookie"] or \
        "Max-Age=0" in out.headers["set-cookie"]
    # The old cookie, presented again, is refused: the session is gone from the database.
    client.cookies.set("caretaker_session", value)
    r = client.get(f"{API}/sites")
    assert r.status_code == 401 and "log in again" in r.json()["error"]["message"]


def test_a_session_expires_when_idle_and_after_its_absolute_lifetime(
        client: TestClient, add_user: Callable[..., None], api_clock: FakeClock) -> None:
    add_user("ann")
    login(client, "ann", PASSWORD)
    # Used every 1 h 50 min: alive (the idle timeout is 2 h) ...
    for _ in range(6):
        api_clock.advance(hours=1, minutes=50)
        assert client.get(f"{API}/sites").status_code == 200
    # ... until 12 h after the login, whatever the use.
    api_clock.advance(hours=1, minutes=1)  # 12 h 01 min
    assert client.get(f"{API}/sites").status_code == 401
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"

    login(client, "ann", PASSWORD)
    api_clock.advance(hours=1, minutes=59)
    assert client.get(f"{API}/sites").status_code == 200
    api_clock.advance(hours=2, minutes=1)
    assert client.get(f"{API}/sites").status_code == 401


def test_unsafe_requests_on_a_session_need_its_csrf_token(
        client: TestClient, add_user: Callable[..., None]) -> None:
    add_user("root", role="admin")
    login(client, "root", PASSWORD)
    csrf = csrf_of(client)
    site = {"id": "a", "name": "A"}
    refused = client.post(f"{API}/sites", json=site)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf"
    assert client.post(f"{API}/sites", json=site,
                       headers={"X-CSRF-Token": "not-it"}).status_code == 403
    assert client.get(f"{API}/sites/a").status_code == 404  # nothing was written
    created = client.post(f"{API}/sites", json=site, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201, created.text
    # Reads need no token.
    assert client.get(f"{API}/sites/a").status_code == 200


def test_bearer_tokens_work_as_before_and_need_no_csrf_token(
        client: TestClient, admin: dict[str, str], add_user: Callable[..., None]) -> None:
    assert client.post(f"{API}/sites", json={"id": "a", "name": "A"},
                       headers=admin).status_code == 201
    # Even alongside a session cookie, a bearer request is the token's and needs no CSRF.
    add_user("viewer1", role="viewer")
    login(client, "viewer1", PASSWORD)
    assert client.post(f"{API}/sites", json={"id": "b", "name": "B"},
                       headers=admin).status_code == 201
    assert client.post(f"{API}/sites", json={"id": "c", "name": "C"},
                       headers={"X-CSRF-Token": csrf_of(client)}).status_code == 403  # a viewer
    bad = client.get(f"{API}/sites", headers={"Authorization": "Bearer ct_nonsense"})
    assert bad.status_code == 401


def test_a_site_scoped_user_sees_only_its_site(
        client: TestClient, admin: dict[str, str], add_user: Callable[..., None]) -> None:
    for site in ("a", "b"):
        assert client.post(f"{API}/sites", json={"id": site, "name": site},
                           headers=admin).status_code == 201
        assert client.post(f"{API}/zones", json={"site_id": site, "id": "z", "name": "Z"},
                           headers=admin).status_code == 201
    add_user("ann", role="supervisor", site="a")
    login(client, "ann", PASSWORD)
    assert [s["id"] for s in client.get(f"{API}/sites").json()["items"]] == ["a"]
    assert client.get(f"{API}/sites/b").status_code == 404
    assert client.get(f"{API}/zones", params={"site": "b"}).status_code == 403
    assert {z["site_id"] for z in client.get(f"{API}/zones").json()["items"]} == {"a"}
    page = client.get("/")
    assert ">a</dd>" in page.text


def test_a_disabled_user_is_refused_and_its_sessions_end(
        client: TestClient, database: str, add_user: Callable[..., None]) -> None:
    add_user("ann")
    login(client, "ann", PASSWORD)
    assert client.get(f"{API}/sites").status_code == 200
    with psycopg.connect(database) as conn:
        set_disabled(conn, "ann")
    assert client.get(f"{API}/sites").status_code == 401
    r = login(client, "ann", PASSWORD)
    assert r.status_code == 403 and ("disabled" in _error(r).lower() or "停用" in _error(r))
    # A wrong password for a disabled user is just a wrong password.
    assert login(client, "ann", "guess").status_code == 401


def test_the_login_form_refuses_a_post_without_its_own_csrf_cookie(
        client: TestClient, add_user: Callable[..., None]) -> None:
    add_user("ann")
    r = client.post("/login", data={"username": "ann", "password": PASSWORD,
                                    "csrf_token": "forged"}, follow_redirects=False)
    assert r.status_code == 403 and "caretaker_session" not in r.headers.get("set-cookie", "")


def test_after_login_only_local_paths_are_followed(
        client: TestClient, add_user: Callable[..., None]) -> None:
    add_user("ann")
    assert login(client, "ann", PASSWORD, next_="//evil.example/x").headers["location"] == "/"
    client.cookies.clear()
    assert login(client, "ann", PASSWORD,
                 next_="/api/v1/sites").headers["location"] == "/api/v1/sites"


def test_the_form_speaks_chinese_by_default_and_english_when_asked(
        client: TestClient, add_user: Callable[..., None]) -> None:
    zh = client.get("/login")
    assert 'lang="zh-CN"' in zh.text and "用户名" in zh.text
    assert 'name="username"' in zh.text and 'name="password"' in zh.text
    en = client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert 'lang="en"' in en.text and "User name" in en.text
    assert "User name" in client.get("/login", params={"lang": "en"}).text
    add_user("ann")
    wrong = login(client, "ann", "guess", lang="en")
    assert _error(wrong) == "Wrong user name or password."


class _Assets(HTMLParser):
    """Every src and href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


@pytest.mark.parametrize("path", [f"{API}/docs", "/login"])
def test_pages_load_only_local_assets(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    assert "http://" not in page.text and "https://" not in page.text
    parser = _Assets()
    parser.feed(page.text)
    assets = [u for u in parser.urls if not u.startswith("/login?")]
    assert assets, page.text
    for url in assets:
        assert url.startswith("/") and not url.startswith("//"), url
        fetched = client.get(url)
        assert fetched.status_code == 200 and len(fetched.content) > 100, url
    if path.endswith("docs"):
        assert any(u.endswith("swagger-ui-bundle.js") for u in assets)
        assert '"validatorUrl": null' in page.text


def test_redoc_is_not_served(client: TestClient) -> None:
    assert client.get(f"{API}/redoc").status_code == 404
    assert client.get("/redoc").status_code == 404

