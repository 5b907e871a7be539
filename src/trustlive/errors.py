"""Typed domain errors. Each carries an HTTP status and a stable machine-readable code.

Services raise these; the web layer turns them into a JSON body (``/api``) or a friendly page
(everything else). Clients match on ``code``, never on the message text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

import msgspec

S = TypeVar("S", bound=msgspec.Struct)


def N_(message: str) -> str:
    """Marks a message people read for the catalog (pybabel extracts ``N_``) without translating
    it here: services stay free of the web layer, JSON keeps the English, and pages show it
    translated (``web.errors.explain``; labels through ``_()`` in templates)."""
    return message


@dataclass
class FieldError:
    field: str
    message: str


class DomainError(Exception):
    status_code: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        fields: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.fields = list(fields or [])
        if field:
            self.fields.insert(0, FieldError(field, message))
        self.headers = headers or {}

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = [{"field": f.field, "message": f.message} for f in self.fields]
        return {"error": body}


class BadRequest(DomainError):
    status_code = 400
    code = "bad_request"


class Unauthorized(DomainError):
    status_code = 401
    code = "not_authenticated"


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(DomainError):
    status_code = 415
    code = "unsupported_media_type"


class ValidationFailed(DomainError):
    status_code = 422
    code = "validation_error"


class TooManyRequests(DomainError):
    status_code = 429
    code = "too_many_requests"


class InvalidTransition(Conflict):
    code = "invalid_transition"


_PATH_RE = re.compile(r"at `\$\.?([^`]*)`")
_MISSING_RE = re.compile(r"missing required field `([^`]*)`")
_UNKNOWN_RE = re.compile(r"unknown field `([^`]*)`")


def field_from_message(message: str, key: object = None) -> str:
    """The most specific field a msgspec/Litestar message names ("skus[0].price_fen")."""
    path = _PATH_RE.search(message)
    prefix = path.group(1) if path else ""
    for pattern in (_MISSING_RE, _UNKNOWN_RE):
        found = pattern.search(message)
        if found:
            return f"{prefix}.{found.group(1)}" if prefix else found.group(1)
    if prefix:
        return prefix
    return str(key) if key and key != "data" else "body"


def from_msgspec(exc: msgspec.ValidationError) -> ValidationFailed:
    message = str(exc)
    field = field_from_message(message)
    text = _PATH_RE.sub("", message).strip(" -") or message
    return ValidationFailed(f"{field}: {text}", fields=[FieldError(field, text)])


def validated(data: S) -> S:
    """Re-check a msgspec struct against its own constraints.

    Structs built in Python (CLI, simulator, tests) skip the checks that decoding a request
    applies; services call this so every caller meets the same rules.
    """
    try:
        return msgspec.convert(msgspec.to_builtins(data), type(data))
    except msgspec.ValidationError as exc:
        raise from_msgspec(exc) from None


def require_idempotency_key(key: str | None, what: str = "request") -> str:
    """The caller's Idempotency-Key, checked: 400 when it is missing or unusable."""
    if key is None or not key.strip():
        raise BadRequest(
            f"Idempotency-Key: send a unique key per {what} (e.g. a UUID)", field="Idempotency-Key",
            code="idempotency_key_required",
        )  # fmt: skip
    key = key.strip()
    if len(key) > 100 or not key.isprintable():
        raise BadRequest("Idempotency-Key: at most 100 printable characters", field="Idempotency-Key",
                         code="bad_idempotency_key")  # fmt: skip
    return key
