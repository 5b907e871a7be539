"""Client frames are parsed strictly: anything over 2 KiB, not JSON, of an unknown type or with a
field of the wrong type is a ``bad_frame``; server frames are plain JSON; text loses controls."""

from __future__ import annotations

import json

import pytest

from tests.live.fakes import parse_wire
from trustlive.live import protocol as P
from trustlive.live import wire


def test_each_client_frame_is_decoded() -> None:
    assert P.parse_client_frame('{"t":"hello"}') == P.Hello()
    hello = P.parse_client_frame('{"t":"hello","resume":{"e":5,"o":"17-0"}}')
    assert isinstance(hello, P.Hello) and hello.resume == P.Resume(e=5, o="17-0")
    assert P.parse_client_frame('{"t":"comment","x":"hi","ref":"c1"}') == P.Comment(x="hi", ref="c1")
    assert P.parse_client_frame(b'{"t":"like","n":3}') == P.Like(n=3)
    assert P.parse_client_frame('{"t":"ping"}') == P.Ping()


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1,2]",
        '{"t":"shout"}',
        '{"x":"no type"}',
        '{"t":"comment","x":5}',
        '{"t":"comment"}',
        '{"t":"like","n":"3"}',
        '{"t":"like","n":11}',
        '{"t":"like","n":0}',
        '{"t":"hello","resume":{"e":[1],"o":2}}',
        json.dumps({"t": "comment", "x": "a" * 2100}),
    ],
)
def test_a_bad_frame_is_refused_with_bad_frame(raw: str) -> None:
    with pytest.raises(P.Refused) as refused:
        P.parse_client_frame(raw)
    assert refused.value.code == P.BAD_FRAME and not refused.value.close


def test_the_size_limit_counts_bytes_not_characters() -> None:
    text = "评" * 700  # 2,100 bytes in UTF-8, 700 characters
    with pytest.raises(P.Refused, match="2048"):
        P.parse_client_frame(json.dumps({"t": "comment", "x": text}, ensure_ascii=False))


def test_server_frames_and_control_characters() -> None:
    assert json.loads(P.error_frame("muted", "m", ref="r1")) == {
        "t": "error", "code": "muted", "message": "m", "ref": "r1"
    }  # fmt: skip
    assert json.loads(P.bye_frame("too_slow", "x")) == {"t": "bye", "code": "too_slow", "message": "x"}
    assert json.loads(P.ack_frame(7)) == {"t": "ack", "ref": 7}
    assert P.strip_controls(" a\x00b\x1b[31mc\nd\u202ee\x7f ") == "ab[31mc de"


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_wire_frames_round_trip(size: int) -> None:
    payload = b"x" * size
    [(opcode, body)] = parse_wire(wire.frame(payload))
    assert (opcode, body) == (1, payload)
    [(opcode, body)] = parse_wire(wire.close_frame(1000, "bye"))
    assert opcode == 8 and body == b"\x03\xe8bye"
