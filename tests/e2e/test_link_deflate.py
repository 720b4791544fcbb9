"""FLASH_ZDATA on both cores: a compressible blob (every zoo model) goes deflated where the
board announces F_DEFLATE, installs bit-identical and puts fewer bytes on the line; a board
that does not announce it gets plain FLASH_DATA."""
import pytest

from npu_sdk import compiler
from npu_sdk.link import Board, codec
from tests.conftest import ZOO, Emulator

CORES = ["cpython", "micropython"]
ZOO_INT8 = sorted(ZOO.glob("*/int8.tflite"))
_BLOBS = {}


def zoo_blob(path):
    if path not in _BLOBS:
        _BLOBS[path] = compiler.compile_file(str(path)).blob
    return _BLOBS[path]


def flash(core, flash_dir, data, deflate=True):
    """Flash `data` as "m"; -> (frames sent per type, bytes on the line, FlashResult)."""
    frames, wire = {}, [0]

    def trace(direction, t, ftype, seq, payload):
        if direction == ">":
            frames[ftype] = frames.get(ftype, 0) + 1
            wire[0] += len(codec.encode(ftype, seq, payload))

    emu = Emulator(core, flash_dir=flash_dir)
    try:
        with Board(emu.port, trace=trace) as board:
            assert board.info.features & codec.F_DEFLATE  # both cores can inflate
            if not deflate:
                board.info.features &= ~codec.F_DEFLATE  # as a board without `deflate` says
            board.flash(data, "m", skip_if_same=False, preflight=False)  # no fresh HELLO
            return frames, wire[0], board.last_flash
    finally:
        emu.stop()


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("model", ZOO_INT8, ids=lambda p: p.parent.name)
def test_a_zoo_blob_flashes_deflated_and_installs_bit_identical(core, model, tmp_path):
    data = zoo_blob(model)
    frames, wire, stats = flash(core, tmp_path, data)
    assert (tmp_path / "m.npb").read_bytes() == data
    assert frames.get(codec.FLASH_ZDATA, 0) > 0, frames
    assert stats.sent < len(data) and wire < len(data), (stats.sent, wire, len(data))


@pytest.mark.parametrize("core", CORES)
def test_a_board_without_deflate_gets_plain_data(core, tmp_path):
    data = zoo_blob(ZOO_INT8[0])
    frames, wire, stats = flash(core, tmp_path, data, deflate=False)
    assert (tmp_path / "m.npb").read_bytes() == data
    assert codec.FLASH_ZDATA not in frames and stats.sent == len(data)
    assert wire > len(data)
