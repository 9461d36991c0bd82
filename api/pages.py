"""Server-rendered pages: Jinja2 templates in api/templates with the reports' gettext
catalogue (reports/locale), and the choice of a page's language."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from reports import i18n

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
DEFAULT_LANGUAGE = "zh-CN"
# Pages may load only what Caretaker serves: no inline script, no other origin, no framing.
HEADERS = {"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; "
                                      "form-action 'self'; base-uri 'none'",
           "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
           "Cache-Control": "no-store"}


@cache
def environment(language: str) -> Environment:
    """The page templates in one language."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(),
                      extensions=["jinja2.ext.i18n"], undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(  # type: ignore[attr-defined]
        i18n.translations(language), newstyle=True)
    env.globals["language"] = language
    env.globals["languages"] = i18n.LANGUAGES
    return env


def from_header(accept_language: str | None) -> str | None:
    """The first of our languages the browser's Accept-Language asks for, if any."""
    wanted = []
    for part in (accept_language or "").split(",")[:20]:
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            continue
        if tag:
            wanted.append((weight, tag.replace("_", "-")))
    preferred = [tag for _, tag in sorted(wanted, key=lambda w: -w[0])]
    found = Locale.negotiate(preferred, [lang.replace("-", "_") for lang in i18n.LANGUAGES],
                             sep="-")
    return str(found).replace("_", "-") if found else None


def language_for(request: Request, *choices: str | None) -> str:
    """A page's language: `?lang=`, else the first of `choices` given (the user's, the
    site's), else the browser's, else Chinese."""
    asked = request.query_params.get("lang")
    for lang in (asked, *choices, from_header(request.headers.get("accept-language"))):
        if lang in i18n.LANGUAGES:
            return lang
    return DEFAULT_LANGUAGE


def page(template: str, language: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A rendered page with the pages' security headers."""
    html = environment(language).get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)
