"""The board's state, named: a board at its MicroPython REPL or without the npu firmware says
so and what to do (`npu reset`, `npu firmware install`); `--timeout` is the whole wait; a long
`--repeat` waits as long as the work takes; input upload adapts to a lossy line."""
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from tests.conftest import ZOO, Emulator, fc_model
from tests.e2e.test_cli_errors import NPU, npu, one_line
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
    """About 10 ms a run on the MicroPython core: 400 runs take longer than --timeout 2 (the
    first run, which loads the model, takes less, with room for a loaded machine)."""
    emu = Emulator("micropython", flash_dir=tmp_path / "flash")
    try:
        npu("flash", ZOO / "kws_dscnn" / "int8.tflite", "--port", emu.port)
        x = tmp_path / "x.npy"
        np.save(x, np.load(ZOO / "kws_dscnn" / "samples.npz")["x_int8"][0])
        report = json.loads(npu("run", "kws_dscnn", "--input", x, "--repeat", 400, "--timeout", 2,
                                "--port", emu.port, "--json").stdout)
        assert report["repeat"] == 400 and report["outputs"][0]["shape"] == [1, 6]
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
        # --timeout 30: a streak of lost pieces backs off past the default 10 s without
        # progress about once in four runs here (cause not found yet: issue 18's note)
        report = json.loads(npu("run", "big", "--input", x, "--port", emu.port,
                                "--timeout", 30, "--json").stdout)
        expected = reference.run_tflm(model_bytes, [sample])[0]
        assert report["outputs"][0]["data"] == expected.tolist()
    finally:
        emu.stop()


def _kws_input(tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.load(ZOO / "kws_dscnn" / "samples.npz")["x_int8"][0])
    return x


def _start_run(port, x, repeat):
    """`npu run` of a long --repeat in the background, once the board is at its work: a second
    host's `npu ls` hears that the board is busy (and with what), in one line."""
    run = subprocess.Popen(NPU + ["run", "kws_dscnn", "--input", str(x), "--repeat", str(repeat),
                                  "--port", port], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    # two hosts on one pty race for its bytes: let the run's HELLO be answered first
    time.sleep(1.0)
    for _ in range(20):  # the first, single run loads the model; then the long one
        r = npu("ls", "--port", port, "--timeout", 3, check=False)
        if "of %d runs" % repeat in r.stderr:
            break
    assert run.poll() is None, run.communicate()  # still at its work
    line = one_line(r)
    assert "is busy running 'kws_dscnn'" in line and "`npu cancel`" in line
    return run


@pytest.mark.parametrize("core", ["cpython", "micropython", "qemu"])
def test_a_busy_board_says_so_and_ctrl_c_stops_its_work(tmp_path, core):
    """`npu run kws_dscnn --repeat 65535`: minutes of work on the MicroPython core. Another
    host hears that the board is busy; Ctrl-C stops the work on the board (it looks between
    inferences), so the next command is answered at once; after a host was killed, the next
    one hears that the board is busy and `npu cancel` stops the work. The qemu board runs the
    viper kernels: its native ones finish 65,535 runs in seconds."""
    emu = Emulator(core, flash_dir=tmp_path / "flash", kernels="viper" if core == "qemu" else None)
    run = None
    try:
        npu("flash", ZOO / "kws_dscnn" / "int8.tflite", "--port", emu.port)
        x = _kws_input(tmp_path)
        run = _start_run(emu.port, x, 65535)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=60)
        assert run.returncode == 130 and "Traceback" not in err, err
        assert "the board stopped running 'kws_dscnn'" in err
        # a board still at its work would answer "busy"
        listing = json.loads(npu("ls", "--port", emu.port, "--timeout", 3, "--json").stdout)
        assert [m["name"] for m in listing["models"]] == ["kws_dscnn"]
        log = npu("console", "--port", emu.port, "--seconds", 0.5).stdout
        assert "RUN of kws_dscnn cancelled after" in log

        # a host killed while its board works: the next one hears why, and can stop the work
        run = _start_run(emu.port, x, 65535)
        run.kill()
        run.wait()
        line = one_line(npu("ls", "--port", emu.port, "--timeout", 3, check=False))
        assert "is busy running 'kws_dscnn'" in line and "of 65535 runs done" in line
        assert "stopped its RUN" in npu("cancel", "--port", emu.port).stdout
        assert "running nothing" in npu("cancel", "--port", emu.port).stdout
        npu("ls", "--port", emu.port, "--timeout", 3)
    finally:
        if run is not None and run.poll() is None:
            run.kill()
            run.wait()
        emu.stop()


@pytest.mark.parametrize("core", ["cpython", "micropython"])
def test_a_run_resent_after_a_hello_is_not_run_again(tmp_path, core):
    """Host A's RUN retransmission queued on the line behind host B's HELLO: the board answers
    it from memory; run again, it would keep the board busy (B's LIST would hear so)."""
    from npu_sdk.link import Board, codec
    repeat = 40000 if core == "cpython" else 300  # seconds of work either way
    x = np.load(ZOO / "kws_dscnn" / "samples.npz")["x_int8"][0].tobytes()
    emu = Emulator(core, flash_dir=tmp_path / "flash")
    try:
        with Board(emu.port) as a:
            a.flash(ZOO / "kws_dscnn" / "int8.tflite")
            request = codec.run_request("kws_dscnn", [x], repeat, codec.RUN_CANCELLABLE)
            first = a.request(codec.RUN, request, timeout=60)
            resent = codec.encode(codec.RUN, a.seq, request)
        with Board(emu.port) as b:
            b.serial.write(resent)
            time.sleep(0.3)  # the LIST comes while a second run of the work would still go on
            listed = (b.seq + 1) & 0xFF
            b.serial.write(codec.encode(codec.LIST, listed))
            answers = {}
            for ftype, seq, payload in b._frames(time.monotonic() + 60):
                answers[seq] = (ftype, payload)
                if len(answers) == 2:
                    break
        assert answers[a.seq] == (codec.RUN | codec.RESPONSE, first)
        assert answers[listed][0] == codec.LIST | codec.RESPONSE, answers[listed]
    finally:
        emu.stop()
