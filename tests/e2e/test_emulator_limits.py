"""Board profiles and flash persistence: the firmware on both cores sees the profile's limits and
refuses what does not fit; --flash-dir keeps models across restarts."""
import numpy as np
import pytest

from npu_sdk.errors import BoardError
from npu_sdk.link import Board, PreflightError
from tools import tflite_build
from tests.conftest import Emulator, fc_model

CORES = ["cpython", "micropython"]


@pytest.fixture(params=CORES)
def m4(request, tmp_path):
    emu = Emulator(request.param, board="cortex-m4-256k", flash_dir=tmp_path / "flash")
    yield emu
    emu.stop()


def test_profile_limits_are_announced(m4):
    with Board(m4.port) as board:
        assert (board.info.ram, board.info.flash, board.info.board) == (256 << 10, 1 << 20,
                                                                        "cortex-m4-256k")


def test_model_larger_than_flash_is_refused(m4):
    _, blob = fc_model(1024, 1100)  # 1.1 MB of weights, the board has 1 MiB of flash
    assert len(blob) > 1 << 20
    with Board(m4.port) as board:
        with pytest.raises(PreflightError) as e:  # the host refuses before sending anything
            board.flash(blob, "big")
        assert e.value.kind == "flash" and "npu rm" in str(e.value)
        with pytest.raises(BoardError) as e:  # and so does the board
            board.flash(blob, "big", preflight=False)
        assert e.value.code == 4 and "flash" in str(e.value)
        assert board.list() == []


def test_arena_larger_than_ram_is_refused(m4):
    _, blob = fc_model(128, 128, batches=1100)  # arena: 2 x 140 800 bytes, RAM 256 KiB
    with Board(m4.port, timeout=30) as board:
        with pytest.raises(PreflightError) as e:
            board.flash(blob, "wide")
        assert e.value.kind == "ram" and "arena" in str(e.value)
        # without the host's pre-flight the board refuses it at FLASH_END, as pre-flight does
        with pytest.raises(BoardError) as e:
            board.flash(blob, "wide", preflight=False)
        assert e.value.code == 8 and "arena" in str(e.value)
        assert "npu inspect MODEL --board" in str(e.value)  # what to try
        assert board.list() == []
        # and it keeps serving: a model that fits still runs
        model, small = fc_model(16, 8, seed=1)
        board.flash(small, "small")
        x = np.arange(16, dtype=np.int8).reshape(1, 16)
        y = board.run("small", x)
        np.testing.assert_array_equal(y, tflite_build.run_tflm(model, x))


@pytest.mark.parametrize("core", CORES)
def test_flash_dir_survives_a_kill(core, tmp_path):
    model, blob = fc_model(64, 10, seed=3)
    x = np.arange(-32, 32, dtype=np.int8).reshape(1, 64)
    emu = Emulator(core, flash_dir=tmp_path / "flash")
    try:
        with Board(emu.port) as board:
            board.flash(blob, "kept")
    finally:
        emu.proc.kill()  # no clean shutdown
        emu.wait()
    emu = Emulator(core, flash_dir=tmp_path / "flash")
    try:
        with Board(emu.port) as board:
            (entry,) = board.list()
            assert (entry.name, entry.blob_id) == ("kept", blob[-32:])
            y = board.run("kept", x)
        np.testing.assert_array_equal(y, tflite_build.run_tflm(model, x))
    finally:
        emu.stop()
