"""A host that sends any sequence of requests never breaks the firmware's install guarantee.

The fault run (tools/bench_link.py --faults) drives the firmware with a well-behaved host
over a noisy line. This drives it with a buggy or hostile one: well-formed requests in any
order, FLASH_BEGIN with a size that does not match the blob id, data at any offset, of any
length, damaged, from another blob, deflated or plain, requests sent twice, RUN and RM
mid-transfer, and board restarts (a new Server on the same flash, as after a reset) in
between. After every request the firmware must have answered it (with its seq), and every
model file on its flash must be, byte for byte, one of the two blobs whose ids the host
announced: a damaged or mixed-up model is never installed, not even as the rollback copy.

Bounded and derandomized, so CI sees the same sequences every run; a long run:
    NPU_FUZZ_EXAMPLES=20000 pytest tests/unit/test_server_sequences.py
"""
import os
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npu_sdk.link import codec
from npufw import server as fw_server
from npufw.board import Board
from npufw.store import Store
from tests.conftest import StepClock, fc_model

EXAMPLES = int(os.environ.get("NPU_FUZZ_EXAMPLES", "150"))
NAMES = ("a", "b")
_BLOBS = []


def blobs():
    """Two small real blobs with the same input size (so one RUN input fits both)."""
    if not _BLOBS:
        _BLOBS.extend([fc_model(16, 8, seed=1)[1], fc_model(16, 24, seed=2)[1]])
    return _BLOBS


def _chunk(draw_offset, length, source, which):
    blob = blobs()[which]
    data = bytearray(blob[draw_offset:draw_offset + length])
    if source == "flipped" and data:
        data[len(data) // 2] ^= 0x40
    elif source == "other blob":
        other = blobs()[1 - which]
        data = bytearray(other[draw_offset:draw_offset + length])
    return bytes(data)


def _data_request(offset, data, deflate):
    z = deflate and codec.flash_zdata_request(offset, data)
    return (codec.FLASH_ZDATA, z) if z else (codec.FLASH_DATA, struct.pack("<I", offset) + data)


STEP = st.one_of(
    st.tuples(st.just("begin"), st.sampled_from(NAMES), st.integers(0, 1), st.sampled_from([0, 0, -1, 7])),
    st.tuples(st.just("data"), st.integers(0, 1), st.floats(0, 1), st.integers(0, 3000),
              st.sampled_from(["blob", "blob", "blob", "flipped", "other blob"]), st.booleans()),
    st.tuples(st.just("flash"), st.sampled_from(NAMES), st.integers(0, 1), st.integers(1, 2048),
              st.sampled_from(["blob", "flipped", "other blob"]), st.floats(0, 1)),
    st.tuples(st.just("end")),
    st.tuples(st.just("rm"), st.sampled_from(NAMES)),
    st.tuples(st.just("run"), st.sampled_from(NAMES)),
    st.tuples(st.just("list")),
    st.tuples(st.just("hello")),
    st.tuples(st.just("again")),
    st.tuples(st.just("restart")),
)


def request(step):
    """(type, payload) for a step; None for a restart or a repeat."""
    kind = step[0]
    if kind == "begin":
        _, name, which, size_error = step
        blob = blobs()[which]
        return codec.FLASH_BEGIN, codec.flash_begin_request(len(blob) + size_error, blob[-32:], name)
    if kind == "data":
        _, which, where, length, source, deflate = step
        offset = int(where * len(blobs()[which]))
        return _data_request(offset, _chunk(offset, length, source, which), deflate)
    if kind == "end":
        return codec.FLASH_END, b""
    if kind == "rm":
        return codec.RM, codec.pack_str(step[1])
    if kind == "run":
        return codec.RUN, codec.run_request(step[1], [bytes(16)])
    if kind == "list":
        return codec.LIST, b""
    if kind == "hello":
        return codec.HELLO, codec.hello_request()
    return None


def flash(srv, seq, name, which, chunk, source="blob", where=0.0):
    """What a host does: FLASH_BEGIN, the data in order from where the board is, FLASH_END;
    with `source` "flipped" or "other blob" the chunk at `where` is damaged or foreign (all
    else in order, so only the board's checks stand between it and an install).
    Returns the last seq used and the FLASH_END (or refused FLASH_BEGIN) answer."""
    blob = blobs()[which]
    bad = int(where * len(blob)) // chunk * chunk
    seq += 1
    got = answer(srv, codec.FLASH_BEGIN, seq, codec.flash_begin_request(len(blob), blob[-32:], name))
    if got[0] != codec.FLASH_BEGIN | codec.RESPONSE:
        return seq, got
    state, offset = codec.parse_flash_begin(got[2])
    if state == codec.BEGIN_INSTALLED:
        return seq, got
    for off in range(offset, len(blob), chunk):
        seq += 1
        data = _chunk(off, chunk, source if off == bad else "blob", which)
        answer(srv, codec.FLASH_DATA, seq, struct.pack("<I", off) + data)
    seq += 1
    return seq, answer(srv, codec.FLASH_END, seq, b"")


def new_server(root):
    from npu_emulator import _kernels
    store = Store(root, 64 * 1024)  # recovers what the last "power cycle" left, as at boot
    limits = {"ram": 1 << 20, "flash": 64 * 1024, "board": "fuzz"}
    return fw_server.Server(Board(None, store, StepClock(), _kernels, limits, "c"))


def answer(srv, ftype, seq, payload):
    reply = srv.handle(codec.encode(ftype, seq, payload)[1:-1])
    assert reply is not None, "request 0x%02x got no answer" % ftype
    got = codec.decode(reply[1:-1])
    assert got is not None and got[1] == seq & 0xFF
    assert got[0] in (ftype | codec.RESPONSE, codec.ERROR, codec.NAK), hex(got[0])
    return got


def assert_only_whole_blobs(root):
    for f in sorted(os.listdir(root)):
        if f.endswith((".npb", ".new", ".old")):
            with open(os.path.join(root, f), "rb") as fh:
                assert fh.read() in blobs(), "%s on the board's flash is not one of the blobs sent" % f


@given(st.lists(STEP, max_size=40))
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
def test_any_request_sequence_installs_only_whole_blobs(tmp_path_factory, steps):
    root = str(tmp_path_factory.mktemp("flash"))
    srv = new_server(root)
    seq, last = 0, None
    for step in steps:
        if step[0] == "restart":
            srv = new_server(root)
        elif step[0] == "again":  # the host did not hear the answer and sends the same frame
            if last is not None:
                answer(srv, *last)
        elif step[0] == "flash":
            seq, _ = flash(srv, seq, *step[1:])
            last = None
        else:
            seq += 1
            ftype, payload = request(step)
            last = ftype, seq, payload
            answer(srv, *last)
        assert_only_whole_blobs(root)
    # after any of that a correct host still installs a model and runs it, and LIST's ids
    # are those of the files the board holds
    seq += 1
    assert answer(srv, codec.HELLO, seq, codec.hello_request())[0] == codec.HELLO | codec.RESPONSE
    seq, got = flash(srv, seq, "a", 1, 1000)
    if got[0] == codec.ERROR and struct.unpack_from("<H", got[2])[0] == fw_server.E_BAD_BLOB:
        # it resumed on a partial file holding bytes a bad host sent: the board dropped it
        # at FLASH_END, and a host starts over once (docs/protocol.md, as Board.flash does)
        seq, got = flash(srv, seq, "a", 1, 1000)
    assert got[0] in (codec.FLASH_BEGIN | codec.RESPONSE, codec.FLASH_END | codec.RESPONSE), got
    seq += 1
    ftype, _, body = answer(srv, codec.RUN, seq, codec.run_request("a", [bytes(16)]))
    assert ftype == codec.RUN | codec.RESPONSE, body
    seq += 1
    ftype, _, body = answer(srv, codec.LIST, seq, b"")
    listed = codec.parse_list(body)
    assert ftype == codec.LIST | codec.RESPONSE and "a" in [name for name, _, _ in listed]
    for name, size, blob_id in listed:
        with open(os.path.join(root, name + ".npb"), "rb") as fh:
            data = fh.read()
        assert (len(data), data[-32:]) == (size, blob_id)
    assert_only_whole_blobs(root)
