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
NAMES = ("a", "b", "a", "b", "\u00e9t\u00e9")  # two models, and now and then a name a board refuses
_BLOBS = []


def blobs():
    """Two small real blobs with the same input size (so one RUN input fits both)."""
    if not _BLOBS:
        _BLOBS.extend([fc_model(16, 8, seed=1)[1], fc_model(16, 24, seed=2)[1]])
    return _BLOBS


def _chunk(offset, length, source, which):
    """Blob `which`'s bytes at `offset`: as they are ("blob"), with a bit flipped ("flipped"),
    or the other blob's bytes there ("other blob")."""
    data = bytearray(blobs()[1 - which if source == "other blob" else which][offset:offset + length])
    if source == "flipped" and data:
        data[len(data) // 2] ^= 0x40
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


def _frames(step):
    """[(type, payload)] a host sends for one step."""
    kind = step[0]
    if kind == "begin":
        _, name, which, size_error = step
        blob = blobs()[which]
        return [(codec.FLASH_BEGIN, codec.flash_begin_request(len(blob) + size_error, blob[-32:], name))]
    if kind == "data":
        _, which, where, length, source, deflate = step
        offset = int(where * len(blobs()[which]))
        return [_data_request(offset, _chunk(offset, length, source, which), deflate)]
    if kind == "flash":  # a whole transfer from 0, one chunk at `where` damaged or foreign
        _, name, which, chunk, source, where = step
        blob = blobs()[which]
        bad = int(where * len(blob)) // chunk * chunk
        return ([(codec.FLASH_BEGIN, codec.flash_begin_request(len(blob), blob[-32:], name))]
                + [(codec.FLASH_DATA, struct.pack("<I", off)
                    + _chunk(off, chunk, source if off == bad else "blob", which))
                   for off in range(0, len(blob), chunk)]
                + [(codec.FLASH_END, b"")])
    if kind == "rm":
        return [(codec.RM, codec.pack_str(step[1]))]
    if kind == "run":
        return [(codec.RUN, codec.run_request(step[1], [bytes(16)]))]
    return [{"end": (codec.FLASH_END, b""), "list": (codec.LIST, b""),
             "hello": (codec.HELLO, codec.hello_request())}[kind]]


def session(steps):
    """What the host sends for `steps`, in order: (type, seq, payload) requests, and
    "restart" where the board restarts. "again" sends the last request again, same seq
    (the host did not hear the answer)."""
    out, seq, last = [], 0, None
    for step in steps:
        if step[0] == "restart":
            out.append("restart")
        elif step[0] == "again":
            if last is not None:
                out.append(last)
        else:
            for ftype, payload in _frames(step):
                seq += 1
                last = (ftype, seq, payload)
                out.append(last)
    return out


def install(srv, seq, name, which):
    """What a correct host does (as Board.flash): FLASH_BEGIN, the data from where the board
    is, FLASH_END; when a resumed transfer fails the SHA-256 (the partial file held bytes a bad
    host sent: the board dropped it), once more from 0. -> (last seq, the last answer)."""
    blob = blobs()[which]
    for _ in range(2):
        seq += 1
        got = answer(srv, codec.FLASH_BEGIN, seq, codec.flash_begin_request(len(blob), blob[-32:], name))
        if got[0] != codec.FLASH_BEGIN | codec.RESPONSE:
            return seq, got
        state, offset = codec.parse_flash_begin(got[2])
        if state == codec.BEGIN_INSTALLED:
            return seq, got
        for off in range(offset, len(blob), 1000):
            seq += 1
            answer(srv, codec.FLASH_DATA, seq, struct.pack("<I", off) + blob[off:off + 1000])
        seq += 1
        got = answer(srv, codec.FLASH_END, seq, b"")
        if not (offset and got[0] == codec.ERROR
                and struct.unpack_from("<H", got[2])[0] == fw_server.E_BAD_BLOB):
            return seq, got
    return seq, got


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
          suppress_health_check=[HealthCheck.too_slow])
def test_any_request_sequence_installs_only_whole_blobs(tmp_path_factory, steps):
    root = str(tmp_path_factory.mktemp("flash"))
    srv = new_server(root)
    requests = session(steps)
    for item in requests:
        if item == "restart":
            srv = new_server(root)
        else:
            answer(srv, *item)
        assert_only_whole_blobs(root)
    # after any of that a correct host still installs a model and runs it, and LIST's ids
    # are those of the files the board holds
    seq = max([item[1] for item in requests if item != "restart"], default=0) + 1
    assert answer(srv, codec.HELLO, seq, codec.hello_request())[0] == codec.HELLO | codec.RESPONSE
    seq, got = install(srv, seq, "a", 1)
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
