"""The board's state, named: a board at its MicroPython REPL or without the npu firmware says
so and what to do (`npu reset`, `npu firmware install`); `--timeout` is the whole wait; a long
`--repeat` waits as long as the work takes; input upload adapts to a lossy line."""
import json
import os

import numpy as np
import pytest

from tests.conftest import ZOO, Emulator, fc_model
from tests.e2e.test_cli_errors import npu, one_line
from tests.e2e.test_firmware_install import repl_board  # noqa: F401 (a fixture)


@pytest.mark.parametrize("core", ["micropython", "qemu"])
def test_board_at_its_repl_is_named_and_reset(tmp_path, core):
    emu = Emulator(core, flash_dir=tmp_path / "flash")
    try:
        port = emu.port
        npu("repl", "--port", port, "--wait", 0.5, "--timeout", 30)  # leaves it at the REPL
        line = one_line(npu("ls", "--port", port, "--timeout", 2, check=False))
        assert "is at its MicroPython REPL" in line and "`npu reset`" in line
        assert "again" in npu("reset", "--port", port, "--timeout", 30).stdout
        assert json.loads(npu("ls", "--port", port, "--json").stdout)["models"] == []
        assert "nothing to reset" in npu("reset", "--port", port).stdout
    finally:
        emu.stop()


@pytest.mark.parametrize("core", ["micropython", "qemu"])
def test_hello_never_soft_resets_a_repl(tmp_path, monkeypatch, core):
    """A board at its REPL reads HELLO's frames as keys. With seq 242 the frame is
    7e 01 f2 03 00 04 4c 95 04 7e: Ctrl-C clears the line and the Ctrl-D after it soft-resets
    the board back into the firmware, which then answers a retransmission (the flaky
    test above). The host picks HELLO's seq so that its frame holds no Ctrl-D."""
    import random

    from npu_sdk.link import Board, board_state
    emu = Emulator(core, flash_dir=tmp_path / "flash")
    try:
        npu("repl", "--port", emu.port, "--wait", 0.5, "--timeout", 30)
        monkeypatch.setattr(random, "randrange", lambda n: 241)  # HELLO goes out as seq 242
        with pytest.raises(board_state.AtRepl):
            Board(emu.port, timeout=2, retries=0).close()
    finally:
        emu.stop()


def test_micropython_without_the_firmware_says_install_it(repl_board):  # noqa: F811
    port, _ = repl_board
    for command in ("ls", "reset"):
        line = one_line(npu(command, "--port", port, "--timeout", 2, check=False))
        assert "runs MicroPython without the npu firmware" in line
        assert "npu firmware install --port %s" % port in line


def test_timeout_is_the_whole_wait():
    master, slave = os.openpty()  # a port where nothing answers
    try:
        line = one_line(npu("ls", "--port", os.ttyname(slave), "--timeout", 2, check=False))
    finally:
        os.close(master)
        os.close(slave)
    assert "no answer from the board" in line and "within 2.0 s" in line


def test_a_long_repeat_waits_for_the_work(tmp_path):
    """About 10 ms a run on the MicroPython core: 200 runs take longer than --timeout 1 (the
    first run, which loads the model, takes less)."""
    emu = Emulator("micropython", flash_dir=tmp_path / "flash")
    try:
        npu("flash", ZOO / "kws_dscnn" / "int8.tflite", "--port", emu.port)
        x = tmp_path / "x.npy"
        np.save(x, np.load(ZOO / "kws_dscnn" / "samples.npz")["x_int8"][0])
        report = json.loads(npu("run", "kws_dscnn", "--input", x, "--repeat", 200, "--timeout", 1,
                                "--port", emu.port, "--json").stdout)
        assert report["repeat"] == 200 and report["outputs"][0]["shape"] == [1, 6]
    finally:
        emu.stop()


@pytest.mark.parametrize("core", ["cpython", "micropython"])
def test_input_upload_adapts_to_a_lossy_line(tmp_path, core):
    """A 27 KB input over a line flipping one byte in a thousand: its 4 KB pieces rarely arrive
    whole, smaller ones do."""
    from npu_sdk import reference
    model_bytes = fc_model(27648, 1)[0]
    model = tmp_path / "big.tflite"
    model.write_bytes(model_bytes)
    x = tmp_path / "x.npy"
    sample = np.random.default_rng(3).integers(-128, 128, (1, 27648)).astype(np.int8)
    np.save(x, sample)
    emu = Emulator(core, flash_dir=tmp_path / "flash", faults="flip=1e-3")
    try:
        npu("flash", model, "--port", emu.port, "--timeout", 30)
        report = json.loads(npu("run", "big", "--input", x, "--port", emu.port,
                                "--json").stdout)  # the default --timeout: 10 s
        expected = reference.run_tflm(model_bytes, [sample])[0]
        assert report["outputs"][0]["data"] == expected.tolist()
    finally:
        emu.stop()
