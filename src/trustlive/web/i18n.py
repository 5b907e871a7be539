"""Simplified Chinese and English UI text through gettext catalogs (Babel).

Source strings are English; ``web/locale/zh_Hans/LC_MESSAGES/messages.po`` translates them.
The .po file is compiled in memory at start-up, so no build step or binary file is needed.
``make i18n`` re-extracts strings from code and templates and merges them into the catalog.
"""

from __future__ import annotations

import contextvars
import gettext as _gettext
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from trustlive.errors import N_  # noqa: F401  (marks strings for extraction; re-exported for pages)

LOCALE_DIR = Path(__file__).parent / "locale"
LOCALES = {"zh_Hans": "简体中文", "en": "English"}
DEFAULT_LOCALE = "zh_Hans"
HTML_LANG = {"zh_Hans": "zh-Hans", "en": "en"}

_current: contextvars.ContextVar[str] = contextvars.ContextVar("trustlive_locale", default=DEFAULT_LOCALE)


@cache
def translations(locale: str) -> _gettext.NullTranslations:
    po = LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    if locale == "en" or not po.exists():
        return _gettext.NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale="zh_Hans_CN" if locale == "zh_Hans" else locale)
    buf = BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return Translations(fp=buf)


def negotiate(cookie: str | None, accept_language: str | None, default: str = DEFAULT_LOCALE) -> str:
    if cookie in LOCALES:
        return cookie  # type: ignore[return-value]
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh_Hans"
        if tag.startswith("en"):
            return "en"
    return default if default in LOCALES else DEFAULT_LOCALE


def set_locale(locale: str) -> contextvars.Token[str]:
    return _current.set(locale if locale in LOCALES else DEFAULT_LOCALE)


def reset_locale(token: contextvars.Token[str]) -> None:
    _current.reset(token)


def current_locale() -> str:
    return _current.get()


def gettext(message: str) -> str:
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


def localized(obj: object, field: str) -> str:
    """Pick ``<field>_zh`` or ``<field>_en`` of a record for the current locale."""
    suffix = "zh" if _current.get() == "zh_Hans" else "en"
    value = getattr(obj, f"{field}_{suffix}", None) or getattr(obj, f"{field}_zh", "")
    return str(value)
