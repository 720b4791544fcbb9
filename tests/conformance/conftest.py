import pytest

from npu_sdk import firmware_image
from tests.conftest import Emulator


@pytest.fixture(scope="module", params=sorted(firmware_image.TARGETS))
def native_board(request, tmp_path_factory):
    """A Board on each qemu image (Cortex-M55, Cortex-M4), whose firmware runs the native
    npu module (firmware/native: the C core, CMSIS-NN's kernels with $CMSIS_NN_DIR)."""
    from npu_sdk.link import Board
    emu = Emulator("qemu", board=request.param, flash_dir=tmp_path_factory.mktemp("qemu-flash"))
    try:
        with Board(emu.port, timeout=60) as board:
            yield board
    finally:
        emu.stop()
