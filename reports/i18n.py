"""The message catalogue (gettext, read through Babel) and locale-aware formatting.

Catalogues are `reports/locale/<locale>/LC_MESSAGES/caretaker.po`, compiled in memory when
first used (Babel's read_po/write_mo), so no compiled .mo file is kept in the tree. Every
page (the reports, the handover sheet, the staff console) takes its words from here.
"""

from __future__ import annotations

import gettext
from datetime import date, datetime, timedelta
from functools import cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from caretaker.errors import Invalid

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "caretaker"
LANGUAGES = ("zh-CN", "en")  # as the API and the site file spell them (BCP 47)


def locale_of(language: str) -> Locale:
    """The Babel locale of a language tag: "zh-CN" → zh_CN."""
    if language not in LANGUAGES:
        raise Invalid(f"unknown language {language!r}; one of {', '.join(LANGUAGES)}")
    return Locale.parse(language, sep="-")


@cache
def translations(language: str) -> gettext.GNUTranslations:
    """The compiled catalogue of a language (read from its .po file once per process)."""
    locale = locale_of(language)
    path = LOCALE_DIR / language.replace("-", "_") / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as po:
        catalog = read_po(po, locale=locale, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def gettext_for(language: str) -> gettext.GNUTranslations:
    """The catalogue to translate code-side messages with: `gettext_for(lang).gettext(...)`."""
    return translations(language)


def format_datetime(at: datetime, language: str, tz: str) -> str:
    """A date and time on the site's clock, in the language's usual form."""
    return babel_dates.format_datetime(at, "medium", tzinfo=ZoneInfo(tz),
                                       locale=locale_of(language))


def format_time(at: datetime, language: str, tz: str) -> str:
    """A time of day on the site's clock (hours and minutes)."""
    return babel_dates.format_time(at, "short", tzinfo=ZoneInfo(tz), locale=locale_of(language))


def format_date(day: date, language: str) -> str:
    """A calendar date in the language's usual form."""
    return babel_dates.format_date(day, "medium", locale=locale_of(language))


def format_percent(value: float | None, language: str, *, none: str = "—") -> str:
    """A ratio (0.987) as a percentage (98.7 %), or `none` when there is nothing to count."""
    if value is None:
        return none
    return babel_numbers.format_percent(value, "#,##0.0%", locale=locale_of(language))


def format_number(value: float | None, language: str, *, none: str = "—") -> str:
    """A count or measure with the language's separators."""
    if value is None:
        return none
    return babel_numbers.format_decimal(value, "#,##0.##", locale=locale_of(language))


def format_duration(seconds: float | None, language: str, *, none: str = "—") -> str:
    """A span of time in words ("3 hours", "3小时"), to the unit that matters."""
    if seconds is None:
        return none
    return babel_dates.format_timedelta(timedelta(seconds=seconds), threshold=1.5,
                                        locale=locale_of(language))
