"""pytest plugin (entry point `npu`): run a user's tests on a fresh emulator, or on hardware.

    def test_digit(npu_board):
        npu_board.flash_file("model.tflite", name="m")
        (y,), _ = npu_board.run("m", [x])

`--npu-port PORT` runs the same tests against a real board; `--npu-core micropython`
runs them on the MicroPython VM core of the emulator.
"""
import subprocess
import sys

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("npu", "npu-sdk boards")
    group.addoption("--npu-port", default=None, help="run npu_board tests on the board at this port")
    group.addoption("--npu-core", default="cpython", choices=("cpython", "micropython"),
                    help="emulator core for npu_board (default: cpython)")
    group.addoption("--npu-board", default="host", help="emulator board profile for npu_board")


@pytest.fixture(scope="session")
def npu_port(request, tmp_path_factory):
    """The port of the board under test: --npu-port, or a fresh emulator for this session."""
    port = request.config.getoption("--npu-port")
    if port:
        yield port
        return
    flash = tmp_path_factory.mktemp("npu-flash")
    proc = subprocess.Popen([sys.executable, "-m", "npu_emulator",
                             "--core", request.config.getoption("--npu-core"),
                             "--board", request.config.getoption("--npu-board"),
                             "--flash-dir", str(flash)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("port: "):
        proc.kill()
        pytest.fail("npu emulator did not start: %r" % line)
    yield line.split(":", 1)[1].strip()
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def npu_board(npu_port):
    """A connected npu_sdk.link.Board."""
    from .link import Board
    with Board(npu_port, timeout=30) as board:
        yield board
