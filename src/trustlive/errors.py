"""Typed domain errors. Each carries an HTTP status and a stable machine-readable code.

Services raise these; the web layer turns them into a JSON body (``/api``) or a friendly page
(everything else). Clients match on ``code``, never on the message text.
"""

from __future__ import annotations

from dataclasses import dataclass


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
