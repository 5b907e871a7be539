"""The Jinja environment shared by every page: i18n, money and time filters, layout globals."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape

from trustlive.money import format_fen
from trustlive.web import i18n
from trustlive.web.errors import explain

TEMPLATE_DIR = Path(__file__).parent / "templates"
UI_TZ = ZoneInfo("Asia/Shanghai")


def local_time(value: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Stored as aware UTC, shown in Asia/Shanghai."""
    if value is None:
        return ""
    return value.astimezone(UI_TZ).strftime(fmt)


def percent(basis_points: int) -> str:
    """500 -> "5", 60 -> "0.6", 1225 -> "12.25": a rate as people type it."""
    whole, rest = divmod(int(basis_points), 100)
    return f"{whole}.{rest:02d}".rstrip("0").rstrip(".")


def yuan(amount: int) -> str:
    """Fen as the plain yuan text a price input holds: 129900 -> "1299.00"."""
    whole, fen = divmod(int(amount), 100)
    return f"{whole}.{fen:02d}"


def build_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html", "xml"], default=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["explain"] = explain
    env.filters["fen"] = format_fen
    env.filters["local_time"] = local_time
    env.filters["percent"] = percent
    env.filters["yuan"] = yuan
    env.globals.update(
        locales=i18n.LOCALES,
        current_locale=i18n.current_locale,
        html_lang=lambda: i18n.HTML_LANG.get(i18n.current_locale(), "zh-Hans"),
        localized=i18n.localized,
    )
    return env


def render_string(env: Environment, name: str, context: dict[str, Any]) -> str:
    return env.get_template(name).render(**context)
