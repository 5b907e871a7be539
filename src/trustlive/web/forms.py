"""HTML form helpers: turn posted fields into the same msgspec structs the JSON API uses, so
both paths share one set of validation rules, and errors name the field that was wrong."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from litestar.datastructures import UploadFile

from trustlive.catalog.service import Upload
from trustlive.errors import DomainError, FieldError, ValidationFailed
from trustlive.money import check_price, parse_yuan
from trustlive.web.i18n import gettext

T = TypeVar("T")

_PATH_RE = re.compile(r"at `\$\.?([^`]*)`")


async def to_upload(file: UploadFile, max_bytes: int) -> Upload:
    """An uploaded file as the services take it. Reads one byte past the limit: enough to refuse
    it, never the whole of a huge body."""
    data = await file.read(max_bytes + 1)
    return Upload(file.filename or "upload", file.content_type or "", data)


def readable(err: DomainError, texts: dict[str, str]) -> DomainError:
    """The error in the reader's language when ``texts`` (code -> msgid) has its code; the code
    stays, so pages and tests still tell errors apart."""
    text_ = texts.get(err.code)
    if text_:
        err.message = gettext(text_)
    return err


def fixable(err: DomainError) -> DomainError:
    """Errors the user can fix on the form come back to be shown on it; refusals (401, 403) and
    missing things (a 404 naming no field) are raised to the error page: re-rendering something
    the user may not see would only fail again."""
    if err.status_code in (401, 403) or (err.status_code == 404 and not err.fields):
        raise err
    return err


def safe_next(value: str | None, default: str = "/") -> str:
    """A local path to go back to after a form (never another site: no "//host")."""
    return value if value and value.startswith("/") and not value.startswith("//") else default


def parse(struct: type[T], data: dict[str, Any]) -> T:
    try:
        return msgspec.convert(data, struct, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        found = _PATH_RE.search(message)
        field = found.group(1) if found else "form"
        text = _PATH_RE.sub("", message).strip(" -")
        raise ValidationFailed(f"{field}: {text}", fields=[FieldError(field, text)]) from None


def text(data: dict[str, Any], name: str, default: str = "") -> str:
    """A form field as text, trimmed; NUL characters (which no browser sends and PostgreSQL
    cannot store) are dropped."""
    value = data.get(name, default)
    if isinstance(value, list):
        value = value[0] if value else default
    return str(value).replace("\x00", "").strip() if value is not None else default


def invalid(field: str, message: str) -> ValidationFailed:
    """The error for one form field: "<field>: <message>", naming the field for the form."""
    return ValidationFailed(f"{field}: {message}", fields=[FieldError(field, message)])


def checked(data: dict[str, Any], name: str) -> bool:
    """An HTML checkbox: present (any value but "false"/"0"/"off") means ticked."""
    return text(data, name).lower() not in ("", "0", "false", "off")


def integer(data: dict[str, Any], name: str, *, minimum: int, maximum: int) -> int:
    """A whole number typed into a form field, within bounds; the error names the field."""
    raw = text(data, name).replace(",", "")
    bounds = {"min": minimum, "max": maximum}
    if not re.fullmatch(r"-?\d{1,12}", raw):
        raise invalid(name, gettext("enter a whole number from %(min)s to %(max)s") % bounds)
    value = int(raw)
    if not minimum <= value <= maximum:
        raise invalid(name, gettext("must be from %(min)s to %(max)s") % bounds)
    return value


def yuan(data: dict[str, Any], name: str) -> int:
    """A price typed in yuan ("12.50") as fen, greater than zero and below the platform maximum."""
    return check_price(parse_yuan(text(data, name), field=name), field=name)


_PERCENT_RE = re.compile(r"^(\d{1,3})(?:\.(\d{1,2}))?$")


def percent_bp(data: dict[str, Any], name: str) -> int:
    """A rate typed as a percentage ("5", "0.6", "12.25") in basis points (500, 60, 1225)."""
    found = _PERCENT_RE.match(text(data, name).removesuffix("%").strip())
    bp = int(found.group(1)) * 100 + int((found.group(2) or "").ljust(2, "0")) if found else -1
    if not 0 <= bp <= 10_000:
        raise invalid(name, gettext("enter a percentage from 0 to 100, at most two decimals (e.g. 5 or 0.6)"))
    return bp


def split_values(raw: str) -> list[str]:
    """Option values as merchants type them: "73 80 90", "S, M, L" or "米白，浅粉、藏青".

    Commas (also the full-width "，" and "、") win when present, so a value may contain spaces.
    """
    raw = raw.strip()
    if re.search(r"[,，、;；]", raw):
        parts = re.split(r"[,，、;；]", raw)
    else:
        parts = raw.split()
    return [p.strip() for p in parts if p.strip()]


def bad_fields(err: DomainError | None, aliases: dict[str, str] | None = None) -> set[str]:
    r"""Form field names an error points at, so the form can mark those inputs.

    ``aliases`` maps a regular expression over API field paths (``skus\[\d+\]\.price_fen``) to the
    form's own field name (``price``) where the two differ.
    """
    if err is None:
        return set()
    found: set[str] = set()
    for f in err.fields:
        name = f.field
        for pattern, alias in (aliases or {}).items():
            if re.fullmatch(pattern, name):
                name = alias
                break
        found.add(name)
    return found
