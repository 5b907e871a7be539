"""WebSocket wire frames built once and written straight to each viewer's transport.

Every viewer of a room gets identical bytes, so the hub builds the frame (RFC 6455 header +
payload; a server never masks) once per tick and writes it to each connection's asyncio transport.
uvicorn is told to use :class:`FastWebSocketProtocol` (``ws=`` option, see :data:`UVICORN_WS`): it
is uvicorn's sans-I/O websockets protocol that also puts itself in the ASGI scope's
``extensions["trustlive.ws"]`` so that the hub can find the transport. Any other server (or
Litestar's test client) has no such extension and the hub falls back to the ASGI send.
"""

from __future__ import annotations

import struct
from typing import Any

EXTENSION = "trustlive.ws"
UVICORN_WS = "trustlive.live.wire:FastWebSocketProtocol"

_OP_TEXT = 0x1
_OP_CLOSE = 0x8


def frame(payload: bytes, opcode: int = _OP_TEXT) -> bytes:
    """One unmasked, final WebSocket frame carrying ``payload``."""
    n = len(payload)
    head = 0x80 | opcode
    if n < 126:
        return bytes((head, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", head, 126, n) + payload
    return struct.pack("!BBQ", head, 127, n) + payload


def close_frame(code: int = 1000, reason: str = "") -> bytes:
    return frame(struct.pack("!H", code) + reason.encode()[:120], _OP_CLOSE)


try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # pragma: no cover - websockets not installed: only the ASGI path exists
    FastWebSocketProtocol: Any = None
else:

    class FastWebSocketProtocol(WebSocketsSansIOProtocol):  # type: ignore[no-redef]
        """uvicorn's websockets (sans-I/O) protocol, exposing itself to the app for direct writes."""

        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            scope = getattr(self, "scope", None)
            if scope is not None and self.response.status_code == 101:
                scope["extensions"][EXTENSION] = self  # the app task has not started yet


def fast_protocol(scope: dict[str, Any]) -> Any:
    """The uvicorn protocol object of a connection served by :class:`FastWebSocketProtocol`."""
    return (scope.get("extensions") or {}).get(EXTENSION)


def uvicorn_ws_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``Config``: the fast protocol, no per-message
    compression (it would compress per viewer what is encoded once per room)."""
    if FastWebSocketProtocol is None:  # pragma: no cover
        return {"ws_per_message_deflate": False}
    return {"ws": UVICORN_WS, "ws_per_message_deflate": False}
