"""The live-room wire protocol (docs/live-protocol.md): client frames, their strict parsing, the
refusal exception and the text helpers.

Server frames are plain dicts encoded ONCE per room per tick with :func:`encode`; client frames are
decoded into the msgspec structs below, which validates their types in the same pass.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

MAX_CLIENT_FRAME_BYTES = 2048
MAX_BAD_FRAMES = 5

# Error / bye codes. A refused client message gets ``{"t":"error","code":...}``; the codes that
# close the connection are sent as ``{"t":"bye","code":...}``.
BAD_FRAME = "bad_frame"
TOO_MANY_BAD_FRAMES = "too_many_bad_frames"
TOO_SLOW = "too_slow"
SIGN_IN_REQUIRED = "sign_in_required"
RATE_LIMITED = "rate_limited"
MUTED = "muted"
BANNED = "banned"
BLOCKED_WORD = "blocked_word"
ENDED = "ended"
SHUTDOWN = "shutdown"


class Refused(Exception):
    """A client message the server will not take; the viewer gets an error frame (or, with
    ``close=True``, a bye frame and the connection closes)."""

    def __init__(self, code: str, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close = close


class Resume(msgspec.Struct, forbid_unknown_fields=False):
    e: int | str
    o: int | str


class Hello(msgspec.Struct, tag_field="t", tag="hello"):
    resume: Resume | None = None


class Comment(msgspec.Struct, tag_field="t", tag="comment"):
    x: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    ref: Annotated[str, msgspec.Meta(max_length=64)] | int | None = None


class Like(msgspec.Struct, tag_field="t", tag="like"):
    n: Annotated[int, msgspec.Meta(ge=1, le=10)] = 1


class Ping(msgspec.Struct, tag_field="t", tag="ping"):
    pass


ClientFrame = Hello | Comment | Like | Ping

_decoder = msgspec.json.Decoder(ClientFrame)
_encoder = msgspec.json.Encoder()


def parse_client_frame(data: str | bytes) -> ClientFrame:
    """Decode one client frame or raise ``Refused("bad_frame", ...)``: over 2 KiB, not JSON, not
    an object, unknown ``t`` or a field of the wrong type."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_CLIENT_FRAME_BYTES:
        raise Refused(BAD_FRAME, f"frame over {MAX_CLIENT_FRAME_BYTES} bytes")
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as err:
        raise Refused(BAD_FRAME, f"invalid frame: {err}") from None
    except msgspec.DecodeError:
        raise Refused(BAD_FRAME, "frame is not JSON") from None


def encode(frame: Any) -> bytes:
    """JSON bytes of a server frame (a dict of plain values)."""
    return _encoder.encode(frame)


def error_frame(code: str, message: str, ref: object = None) -> bytes:
    frame: dict[str, Any] = {"t": "error", "code": code, "message": message}
    if ref is not None:
        frame["ref"] = ref
    return encode(frame)


def bye_frame(code: str, message: str) -> bytes:
    return encode({"t": "bye", "code": code, "message": message})


def ack_frame(ref: object) -> bytes:
    return encode({"t": "ack", "ref": ref})


PONG = encode({"t": "pong"})

# C0/C1 controls (tab and newline included: a comment is one line), DEL, and the bidirectional
# overrides/isolates that can make a comment display reversed text.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def strip_controls(text: str) -> str:
    """``text`` without control characters (tabs and newlines become spaces), trimmed."""
    return _CONTROL.sub(lambda m: " " if m.group() in "\t\n\r" else "", text).strip()
