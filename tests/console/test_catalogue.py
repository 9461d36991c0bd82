"""Every message of the console's pages and routes has its Chinese translation in the
catalogue (none missing, none fuzzy): no English in a Chinese page."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "reports" / "locale" / "zh_CN" / "LC_MESSAGES" / "caretaker.po"
OPTIONS = {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}


def _console_messages() -> set[tuple[str, str | None]]:
    """(message, context) of every translatable string in the console's templates and code."""
    found: set[tuple[str, str | None]] = set()
    for folder, pattern, method in ((ROOT / "api" / "templates" / "console", "**.html", "jinja2"),
                                    (ROOT / "api" / "console", "**.py", "python")):
        for _, _, message, _, context in extract_from_dir(
                folder, method_map=[(pattern, method)], options_map={pattern: OPTIONS}):
            found.add((message[0] if isinstance(message, tuple) else message, context))
    return found


def test_every_console_message_is_translated_into_chinese() -> None:
    with CATALOGUE.open("rb") as po:
        catalogue = read_po(po)
    messages = _console_messages()
    assert len(messages) > 200  # the extraction found the pages' messages
    missing = sorted(m for m, context in messages
                     if not (entry := catalogue.get(m, context=context)) or not entry.string
                     or entry.fuzzy)
    assert not missing, missing
