"""Checks every request gets before its handler runs: ids in the path that no row can have, and
strict JSON bodies.

Ids are 63-bit integers in both databases: a path id beyond ``MAX_ID`` names nothing (404), and
must not reach the database, where it would overflow the column's type.

Litestar converts request data leniently (it must: query strings are text), which would let a
JSON body send ``"price_fen": "59.00"`` and have it silently read as 59 fen. Every JSON body is
therefore first decoded strictly against the handler's msgspec struct; a wrong type is a 422
naming the field, before the handler runs. The handler receives that decoded struct.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.utils.scope.state import ScopeState

from trustlive.errors import BadRequest, NotFound, ValidationFailed, from_msgspec

S = TypeVar("S", bound=msgspec.Struct)

_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
MAX_ID = 2**62  # far beyond any id we will hand out, well inside BIGINT


async def check_request(request: Request[Any, Any, Any]) -> None:
    """The app's ``before_request`` hook: path ids first, then the JSON body."""
    for value in request.path_params.values():
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= MAX_ID:
            raise NotFound("no such page or resource")
    await strict_json_body(request)


def _nul_field(value: Any, path: str = "") -> str | None:
    """The path of the first text holding a NUL character (PostgreSQL cannot store one)."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    if isinstance(value, msgspec.Struct):
        value = {f: getattr(value, f) for f in value.__struct_fields__}
    if isinstance(value, dict):
        for key, item in value.items():
            found = _nul_field(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = _nul_field(item, f"{path}[{i}]")
            if found:
                return found
    return None


def decode_strict(body: bytes, struct: type[S]) -> S:
    """A JSON body decoded strictly against ``struct``: 400 ``malformed_json`` for bad JSON, 422
    naming the field for a wrong type or a text holding a NUL character. For routes that read
    their body themselves (a struct or a multipart form) and so miss ``strict_json_body``."""
    try:
        data = msgspec.json.decode(body, type=struct, strict=True)
    except msgspec.ValidationError as exc:
        raise from_msgspec(exc) from None
    except msgspec.DecodeError:
        raise BadRequest("body: not valid JSON", field="body", code="malformed_json") from None
    if (field := _nul_field(data)) is not None:
        raise ValidationFailed(f"{field}: must not contain NUL characters", field=field)
    return data


async def strict_json_body(request: Request[Any, Any, Any]) -> None:
    if request.method not in _BODY_METHODS:
        return
    parameter = request.route_handler.parsed_fn_signature.parameters.get("data")
    annotation = getattr(parameter, "annotation", None)
    if not (isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)):
        return
    if request.content_type[0] != "application/json":
        return
    data = decode_strict(await request.body(), annotation)
    # Litestar reads the body's JSON from the connection state when it is there: the handler gets
    # this struct as ``data`` instead of the body being decoded and converted a second time.
    ScopeState.from_scope(request.scope).json = data
