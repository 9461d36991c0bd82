"""Pages from templates: Jinja2 with the gettext catalogue, and HTML → PDF with WeasyPrint.

The PDF is laid out offline: the url_fetcher refuses every URL but inline `data:` ones, so
a page can never wait on (or leak to) the network; fonts come from the machine (fontconfig).
"""

from __future__ import annotations

import logging
import warnings
from functools import cache, partial
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from reports import i18n

with warnings.catch_warnings():
    # Without Debian's libharfbuzz-subset0 WeasyPrint warns at import and subsets fonts with
    # fontTools instead (slower, same PDF); scripts/setup.sh installs the library.
    warnings.filterwarnings("ignore", "HarfBuzz-Subset", DeprecationWarning)
    from weasyprint import HTML, URLFetcher

TEMPLATES = Path(__file__).parent / "templates"


@cache
def environment(language: str) -> Environment:
    """The template environment of one language: its catalogue and its formatting filters."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(),
                      extensions=["jinja2.ext.i18n"], undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(  # type: ignore[attr-defined]
        i18n.translations(language), newstyle=True)
    env.filters.update(
        pct=partial(i18n.format_percent, language=language),
        num=partial(i18n.format_number, language=language),
        dur=partial(i18n.format_duration, language=language),
        day=partial(i18n.format_date, language=language),
        dt=lambda at, tz: i18n.format_datetime(at, language, tz),
        hm=lambda at, tz: i18n.format_time(at, language, tz),
    )
    env.globals["language"] = language
    return env


def render_html(template: str, language: str, **context: Any) -> str:
    """A template rendered in a language."""
    return environment(language).get_template(template).render(**context)


def offline_fetcher() -> Any:
    """A URL fetcher for `data:` URLs only; anything else is refused (reports render offline)."""
    return URLFetcher(timeout=1, allowed_protocols=("data",), allow_redirects=False)


class _SvgStyleNoise(logging.Filter):
    """Drops WeasyPrint's notes on inline SVG presentation styles (fill, stroke, ...) that its
    HTML style checker does not know but its SVG renderer draws: one per chart element."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Ignored `") and "unknown property" in message
                    and any(p in message for p in SVG_PROPERTIES))


SVG_PROPERTIES = ("`fill", "`stroke", "`clip-path", "`font:")
logging.getLogger("weasyprint").addFilter(_SvgStyleNoise())


def html_to_pdf(html: str) -> bytes:
    """An HTML page laid out as a PDF, without network access."""
    pdf = HTML(string=html, base_url=None, url_fetcher=offline_fetcher()).write_pdf()
    return bytes(pdf)
