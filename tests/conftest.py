"""Shared test fixtures: paths to the zoo and the real emulator started as users start it."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "model_zoo"
DIGITS_INT8 = ZOO / "digits_mlp" / "int8.tflite"
DIGITS_FLOAT_IO = ZOO / "digits_mlp" / "int8_float_io.tflite"


class Emulator:
    """`npu emulate` in a subprocess; .port is its pseudo-terminal."""

    def __init__(self, core="cpython", board="host", flash_dir=None):
        cmd = [sys.executable, "-m", "npu_emulator", "--core", core, "--board", board]
        if flash_dir:
            cmd += ["--flash-dir", str(flash_dir)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("port: "), "emulator printed %r" % line
        self.port = line.split(":", 1)[1].strip()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(params=["cpython", "micropython"])
def emulator(request, tmp_path):
    emu = Emulator(request.param, flash_dir=tmp_path / "flash")
    yield emu
    emu.stop()
