"""The link codec: the SDK's and the firmware's framing agree on every vector, both ways; the
golden vectors in tests/vectors/protocol/ (tools/make_protocol_vectors.py) pin both."""
import hmac
import json
import random
import struct
import tempfile
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npu_sdk.link import codec
from npufw import frame, server, sign
from tests.conftest import ROOT, StepClock

VECTORS = ROOT / "tests" / "vectors" / "protocol"

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
    for name in ("HELLO", "FLASH_BEGIN", "FLASH_DATA", "FLASH_END", "LIST", "RUN", "RM", "CONSOLE",
                 "REPL", "INPUT", "OUTPUT", "KEY", "FLASH_ZDATA", "ZDATA_WBITS", "LOG", "RESPONSE",
                 "NAK", "ERROR", "PROTOCOL_VERSION", "F_DEFLATE", "F_REPL", "F_PROFILE", "F_STAGING",
                 "F_SIGNING", "F_KEYED", "F_ICOUNT", "NONCE", "BEGIN_SEND", "BEGIN_INSTALLED",
                 "RUN_PROFILE", "RUN_STAGED", "RUN_HOLD", "OUT_HELD"):
        assert getattr(codec, name) == getattr(server, name), name
    fw_errors = {v for k, v in vars(server).items() if k.startswith("E_")}
    assert fw_errors == set(codec.ERRORS)
    assert codec.SIGN_TAG == sign.TAG and codec.AUTH_TAG == sign.AUTH_TAG
    assert codec.DOWNGRADE == sign.DOWNGRADE


@given(st.binary(max_size=150), st.binary(max_size=300), st.text(max_size=40))
@settings(max_examples=200, deadline=None, derandomize=True)
def test_firmware_hmac_is_pythons(key, msg, name):
    """Keys shorter and longer than SHA-256's 64-byte block; the board's MAC is the host's."""
    assert sign.hmac_sha256(key, msg) == hmac.new(key, msg, "sha256").digest()
    blob_id = msg[:32].ljust(32, b"\0")
    version, nonce = len(msg) * 977, msg[-16:]
    assert (sign.blob_mac(key, blob_id, name, version, 1, nonce)
            == codec.blob_mac(key, blob_id, name, version, 1, nonce))
    assert sign.proof(key, nonce, codec.RM, msg) == codec.proof(key, nonce, codec.RM, msg)


@pytest.mark.parametrize("name", ["m", "modèle_ü", "模型.npb"])
def test_blob_mac_signs_blob_id_and_utf8_name(name):
    """Both sides' blob MAC is Python's HMAC over tag + blob id + version u32 + flags u8 +
    the name's UTF-8 bytes."""
    key, blob_id = bytes(range(32)), bytes(range(200, 232))
    want = hmac.new(key, b"npu-blob" + blob_id + b"\x07\0\0\0\0" + name.encode("utf-8"),
                    "sha256").digest()
    assert sign.blob_mac(key, blob_id, name, 7, 0) == codec.blob_mac(key, blob_id, name, 7) == want
    assert codec.blob_mac(key, blob_id, name + "x", 7) != want  # another name, another MAC
    assert codec.blob_mac(key, blob_id, name, 6) != want  # another version, another MAC


def test_mac_compare():
    mac = codec.blob_mac(bytes(32), bytes(32), "m")
    assert sign.equal(mac, bytes(mac))
    for i in (0, 17, 31):
        other = bytearray(mac)
        other[i] ^= 1
        assert not sign.equal(mac, bytes(other))
    assert not sign.equal(mac, mac[:31]) and not sign.equal(mac, b"")


def test_signing_requests_layout():
    key, new = bytes(range(32)), bytes(range(1, 33))
    assert codec.key_request(new) == new + bytes(32)
    nonce = bytes(range(16))
    assert codec.key_request(new, key, nonce) == new + hmac.new(
        key, b"npu-auth" + nonce + bytes([codec.KEY]) + new, "sha256").digest()
    mac = codec.blob_mac(key, bytes(32), "m", 9, 0)
    plain = codec.flash_begin_request(9, bytes(32), "m")
    assert codec.flash_begin_request(9, bytes(32), "m", mac, 9) == plain + b"\x09\0\0\0\0" + mac


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
    for old in (0, codec.PROTOCOL_VERSION - 1):  # the previous protocol signed no model name
        reply = srv.handle(codec.encode(codec.HELLO, 9, codec.hello_request(old))[1:-1])
        assert b"update the host SDK" in codec.decode(reply[1:-1])[2]


# --- golden vectors -------------------------------------------------------------------

def test_frame_vectors_through_both_codecs():
    v = json.loads((VECTORS / "frames.json").read_text())
    for case in v["frames"]:
        payload, wire = bytes.fromhex(case["payload"]), bytes.fromhex(case["wire"])
        assert codec.encode(case["type"], case["seq"], payload) == wire
        assert frame.encode(case["type"], case["seq"], payload) == wire
        expected = (case["type"], case["seq"], payload)
        assert codec.decode(wire[1:-1]) == expected and frame.decode(wire[1:-1]) == expected
    for raw in v["damaged"]:
        assert codec.decode(bytes.fromhex(raw)) is None and frame.decode(bytes.fromhex(raw)) is None


def same_answer(got, want):
    """Answers match byte for byte, except the text CPython and MicroPython put in a
    'malformed request' message (their struct errors are worded differently)."""
    if got == want or got is None or want is None:
        return got == want
    g, w = codec.decode(got[1:-1]), codec.decode(want[1:-1])
    return g[:2] == w[:2] == (codec.ERROR, w[1]) and g[2][:2] == w[2][:2] and \
        g[2].startswith(struct.pack("<H", 2) + b"malformed request:") and \
        w[2].startswith(struct.pack("<H", 2) + b"malformed request:")


def test_session_vectors_on_the_firmware_and_the_sdk():
    from npu_emulator import _kernels
    from npufw.board import Board
    from npufw.store import Store
    v = json.loads((VECTORS / "session.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        srv = server.Server(Board(None, Store(tmp + "/flash", v["limits"]["flash"]), StepClock(),
                                  _kernels, dict(v["limits"]), v["kernels"]))
        srv.seed = bytes.fromhex(v["seed"])  # the nonces the session's proofs were made over
        for step in v["session"]:
            request = bytes.fromhex(step["request"])
            want = step["answer"] and bytes.fromhex(step["answer"])
            assert same_answer(srv.handle(request[1:-1]), want), step["note"]
            check_answer_with_the_sdk(request, want, step["note"])


def check_answer_with_the_sdk(request, answer, note):
    """The SDK decodes every answer of the session with its own message parsers."""
    req = codec.decode(request[1:-1])
    if answer is None:
        assert req is None, note
        return
    ftype, seq, p = codec.decode(answer[1:-1])
    assert seq == req[1], note
    if ftype == codec.ERROR:
        code, message = codec.parse_error(p)
        assert code in codec.ERRORS and message, note
        return
    if ftype == codec.NAK:
        assert codec.parse_verified(p) == 0, note
        return
    assert ftype == req[0] | codec.RESPONSE, note
    parse = {codec.HELLO: codec.parse_hello, codec.FLASH_BEGIN: codec.parse_flash_begin,
             codec.FLASH_DATA: codec.parse_verified, codec.FLASH_ZDATA: codec.parse_verified,
             codec.LIST: codec.parse_list,
             codec.RUN: codec.parse_run, codec.CONSOLE: codec.parse_console,
             codec.INPUT: codec.parse_verified, codec.OUTPUT: bytes,
             codec.NONCE: codec.parse_nonce, codec.CANCEL: codec.parse_cancel}.get(req[0])
    if parse is None:
        assert p == b"", note
    else:
        parse(p)  # raises on any mismatch of layout


def test_zdata_is_sent_only_when_deflate_shrinks_the_chunk():
    rng = random.Random(1)
    noise = bytes(rng.randrange(256) for _ in range(2048))
    assert codec.flash_zdata_request(0, noise) is None  # incompressible: plain FLASH_DATA
    text = b"weights " * 256
    p = codec.flash_zdata_request(4096, text)
    assert len(p) < len(text) // 10 and struct.unpack_from("<I", p)[0] == 4096
    assert zlib.decompressobj(-codec.ZDATA_WBITS).decompress(p[4:]) == text
    assert server._inflate(memoryview(p)[4:], 4096) == text  # the firmware's inflate agrees


@pytest.mark.parametrize("stream", [b"", b"\xff\xff", zlib.compress(b"abc")],
                         ids=["empty", "garbage", "zlib-header"])
def test_firmware_refuses_a_damaged_deflate_stream(stream):
    with pytest.raises(server.Refused) as e:
        server._inflate(stream, 0)
    assert e.value.code == server.E_BAD_REQUEST


def test_firmware_refuses_a_deflate_bomb_without_inflating_it():
    bomb = codec.flash_zdata_request(0, bytes(1 << 20))[4:]  # 1 MB of zeros in ~1 KB
    with pytest.raises(server.Refused) as e:
        server._inflate(bomb, 0)
    assert e.value.code == server.E_BAD_REQUEST and "at most %d bytes" % (server.MAX_PAYLOAD - 4) \
        in e.value.message
    limit = server.MAX_PAYLOAD - 4  # exactly the longest chunk still inflates
    assert server._inflate(codec.flash_zdata_request(0, bytes(limit))[4:], 0) == bytes(limit)


# --- fuzzing: bounded and derandomized -------------------------------------------------

@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_both_decoders_agree_on_any_frame_contents(raw):
    assert codec.decode(raw) == frame.decode(raw)


@given(st.integers(0, 255), st.binary(max_size=200))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_the_server_answers_any_request_and_keeps_serving(ftype, payload):
    class B:
        limits = {"ram": 1 << 16, "flash": 1 << 16, "board": "fuzz"}
        npu = npu_name = None
        clock = StepClock()
        store = _fuzz_store()
    srv = server.Server(B())
    reply = srv.handle(codec.encode(ftype, 3, payload)[1:-1])
    rtype, seq, body = codec.decode(reply[1:-1])
    assert seq == 3 and rtype in (ftype | codec.RESPONSE, codec.ERROR, codec.NAK)
    assert srv.handle(codec.encode(codec.HELLO, 4, codec.hello_request())[1:-1]) is not None


_STORE = []


def _fuzz_store():
    if not _STORE:
        from npufw.store import Store
        _STORE.append(Store(tempfile.mkdtemp(prefix="npu-fuzz-"), 1 << 16))
    return _STORE[0]


@given(st.binary(max_size=120))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_sdk_parsers_refuse_garbage_cleanly(p):
    for parse in (codec.parse_hello, codec.parse_flash_begin, codec.parse_verified, codec.parse_list,
                  codec.parse_run, codec.parse_console, codec.parse_error, codec.parse_log):
        try:
            parse(p)
        except (ValueError, struct.error, IndexError, UnicodeDecodeError):
            pass
