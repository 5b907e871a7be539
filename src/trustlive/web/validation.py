"""Strict JSON bodies.

Litestar converts request data leniently (it must: query strings are text), which would let a
JSON body send ``"price_fen": "59.00"`` and have it silently read as 59 fen. Every JSON body is
therefore first decoded strictly against the handler's msgspec struct; a wrong type is a 422
naming the field, before the handler runs. The handler receives that decoded struct.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.utils.scope.state import ScopeState

from trustlive.errors import BadRequest, from_msgspec

_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


async def strict_json_body(request: Request[Any, Any, Any]) -> None:
    if request.method not in _BODY_METHODS:
        return
    parameter = request.route_handler.parsed_fn_signature.parameters.get("data")
    annotation = getattr(parameter, "annotation", None)
    if not (isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)):
        return
    if request.content_type[0] != "application/json":
        return
    body = await request.body()
    try:
        data = msgspec.json.decode(body, type=annotation, strict=True)
    except msgspec.ValidationError as exc:
        raise from_msgspec(exc) from None
    except msgspec.DecodeError:
        raise BadRequest("body: not valid JSON", field="body", code="malformed_json") from None
    # Litestar reads the body's JSON from the connection state when it is there: the handler gets
    # this struct as ``data`` instead of the body being decoded and converted a second time.
    ScopeState.from_scope(request.scope).json = data
