"""Shared test fixtures; the helpers they use live in tools/testbed.py (the tools use them too)."""
import pytest

from tools.testbed import (CORES, DEFAULT_BOARD, DIGITS_FLOAT_IO, DIGITS_INT8, ROOT, ZOO,  # noqa: F401
                           Emulator, StepClock, fc_model, flash_files, flash_fingerprint,
                           require_qemu, run_on_board)


@pytest.fixture(scope="module")
def qemu_board(tmp_path_factory):
    """A Board connected to a qemu-core emulator (its default profile), for a module."""
    from npu_sdk.link import Board
    emu = Emulator("qemu", flash_dir=tmp_path_factory.mktemp("qemu-flash"))
    try:
        with Board(emu.port, timeout=60) as board:
            yield board
    finally:
        emu.stop()


@pytest.fixture(params=CORES)
def emulator(request, tmp_path):
    emu = Emulator(request.param, flash_dir=tmp_path / "flash")
    yield emu
    emu.stop()
