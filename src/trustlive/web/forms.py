"""HTML form helpers: turn posted fields into the same msgspec structs the JSON API uses, so
both paths share one set of validation rules, and errors name the field that was wrong."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from trustlive.errors import FieldError, ValidationFailed

T = TypeVar("T")

_PATH_RE = re.compile(r"at `\$\.?([^`]*)`")


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
    value = data.get(name, default)
    if isinstance(value, list):
        value = value[0] if value else default
    return str(value).strip() if value is not None else default
