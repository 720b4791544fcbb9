"""`npu flash` at a terminal, as esptool: a progress bar with throughput and ETA when stderr is a
tty; Ctrl-C says how far it got and that the same command resumes, and it does."""
import json
import os
import re
import signal
import subprocess
import threading

import pytest

from tests.conftest import Emulator, fc_model
from tests.e2e.test_cli_errors import NPU, npu


@pytest.fixture
def slow_board(tmp_path):
    """A board behind a 115200-baud line and a 28 KB model: a flash takes a few seconds."""
    model = tmp_path / "big.tflite"
    model.write_bytes(fc_model(27648, 1)[0])
    emu = Emulator("cpython", flash_dir=tmp_path / "flash", baud=115200)
    yield emu, model
    emu.stop()


def test_progress_bar_on_a_terminal(slow_board):
    emu, model = slow_board
    master, slave = os.openpty()  # a fresh pty reports 0 columns, as under `script`
    shown = []
    reader = threading.Thread(target=_drain, args=(master, shown), daemon=True)
    reader.start()
    try:
        proc = subprocess.run(NPU + ["flash", str(model), "--port", emu.port], stderr=slave,
                              stdout=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(slave)
        reader.join(10)
        os.close(master)
    assert proc.returncode == 0 and "flashed" in proc.stdout
    text = b"".join(shown).decode("utf-8", "replace")
    assert re.search(r"big: +\d+%\|", text) and "B/s" in text, text


def _drain(fd, into):
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the pty's other end is closed
            return
        if not chunk:
            return
        into.append(chunk)


def test_ctrl_c_says_where_and_the_same_command_resumes(slow_board):
    emu, model = slow_board
    proc = subprocess.Popen(NPU + ["flash", str(model), "--port", emu.port, "--trace"],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    acks = 0
    for line in proc.stderr:  # interrupt once the board has confirmed some data
        acks += "< FLASH_DATA" in line
        if acks >= 3:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    last = err.strip().splitlines()[-1]
    m = re.fullmatch(r"npu: interrupted at (\d+) of (\d+) bytes; run the same command to resume",
                     last)
    assert proc.returncode == 130 and m, last
    again = json.loads(npu("flash", model, "--port", emu.port, "--json").stdout)
    assert again["resumed_from"] > 0 and again["name"] == "big"
