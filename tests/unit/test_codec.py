"""The link codec: the SDK's and the firmware's framing agree on every vector, both ways."""
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npu_sdk.link import codec
from npufw import frame, server

payloads = st.binary(max_size=600)


@given(st.integers(0, 255), st.integers(0, 255), payloads)
@settings(max_examples=300, deadline=None, derandomize=True)
def test_sdk_frames_decode_on_the_firmware_and_back(ftype, seq, payload):
    wire = codec.encode(ftype, seq, payload)
    assert wire == frame.encode(ftype, seq, payload)
    assert wire.count(bytes([codec.FLAG])) == 2  # the flag never appears inside
    assert frame.decode(wire[1:-1]) == (ftype, seq, payload)
    assert codec.decode(wire[1:-1]) == (ftype, seq, payload)


@given(payloads, st.integers(1, 50))
@settings(max_examples=200, deadline=None, derandomize=True)
def test_deframers_split_any_chunking(payload, chunk):
    stream = codec.encode(1, 2, payload) + codec.encode(3, 4, payload[::-1])
    got_sdk, got_fw = [], []
    sdk, fw = codec.Deframer(), frame.Deframer(4096)
    for i in range(0, len(stream), chunk):
        got_sdk += sdk.feed(stream[i:i + chunk])
        got_fw += fw.feed(stream[i:i + chunk])
    assert [codec.decode(f) for f in got_sdk] == [(1, 2, payload), (3, 4, payload[::-1])]
    assert got_fw == got_sdk


@given(payloads, st.data())
@settings(max_examples=200, deadline=None, derandomize=True)
def test_a_flipped_bit_never_decodes(payload, data):
    wire = bytearray(codec.encode(6, 7, payload))
    i = data.draw(st.integers(1, len(wire) - 2))
    wire[i] ^= 1 << data.draw(st.integers(0, 7))
    contents = bytes(wire[1:-1])
    assert frame.decode(contents) is None or frame.decode(contents) == (6, 7, payload)
    assert codec.decode(contents) in (None, frame.decode(contents))


def test_garbage_is_survived():
    rng = random.Random(0)
    fw = frame.Deframer(256)
    for _ in range(200):
        for raw in fw.feed(bytes(rng.randrange(256) for _ in range(rng.randrange(64)))):
            frame.decode(raw)  # never raises
    assert fw.feed(codec.encode(1, 1, b"ok"))[-1] == codec.encode(1, 1, b"ok")[1:-1]


def test_message_tables_match():
    for name in ("HELLO", "FLASH_BEGIN", "FLASH_DATA", "FLASH_END", "LIST", "RUN", "RESPONSE", "ERROR",
                 "PROTOCOL_VERSION"):
        assert getattr(codec, name) == getattr(server, name), name
    fw_errors = {v for k, v in vars(server).items() if k.startswith("E_")}
    assert fw_errors == set(codec.ERRORS)


@pytest.mark.parametrize("s", ["", "digits", "ünïcode"])
def test_strings(s):
    packed = codec.pack_str(s)
    assert codec.unpack_str(packed, 0) == (s, len(packed))
    assert server._read_str(packed, 0) == (s, len(packed))
    assert server._str(s) == packed


def test_hello_version_mismatch_names_the_side_to_update():
    class B:
        limits = {"ram": 1, "flash": 1}
    srv = server.Server(B())
    reply = srv.handle(codec.encode(codec.HELLO, 9, struct.pack("<H", 7))[1:-1])
    ftype, seq, payload = codec.decode(reply[1:-1])
    assert (ftype, seq) == (codec.ERROR, 9)
    assert struct.unpack_from("<H", payload)[0] == 3 and b"update the firmware" in payload
