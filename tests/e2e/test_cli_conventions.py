"""Conventions users bring from esptool and mpremote: --version, -p and a port before the
subcommand, `console --count N` prints N lines, `validate` leaves the board's models as they
were, `firmware build` without -o."""
import json
import subprocess
import sys

import pytest

import npu_sdk
from tests.conftest import DIGITS_INT8, Emulator
from tests.e2e.test_cli_errors import npu


@pytest.fixture(params=["cpython", "micropython"])
def board(request, tmp_path):
    emu = Emulator(request.param, flash_dir=tmp_path / "flash")
    yield emu
    emu.stop()


def test_version():
    r = npu("--version")
    assert r.stdout.strip() == "npu-sdk %s" % npu_sdk.__version__
    assert npu_sdk.__version__[0].isdigit()


def test_port_flags_console_count_and_validate_leaves_nothing(board):
    port = board.port
    npu("-p", port, "flash", DIGITS_INT8, "--name", "a")  # the port before the subcommand
    npu("flash", DIGITS_INT8, "--name", "b", "-p", port)
    npu("flash", DIGITS_INT8, "--name", "c", "-p", port)
    lines = npu("console", "-p", port, "--count", 3, "--seconds", 5).stdout.splitlines()
    assert len(lines) == 3
    pytest.importorskip("tflite_micro")
    rep = json.loads(npu("validate", DIGITS_INT8, "-p", port, "--json").stdout)
    assert rep["bit_exact"]
    assert sorted(e["name"] for e in json.loads(npu("ls", "-p", port, "--json").stdout)["models"]) == \
        ["a", "b", "c"]


def test_firmware_build_without_output(tmp_path):
    subprocess.run([sys.executable, "-m", "npu_sdk", "firmware", "build"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=300)
    assert (tmp_path / "npu-firmware" / "manifest.json").exists()


@pytest.mark.parametrize("core", ["cpython", "micropython"])
def test_without_a_port_the_one_board_found(tmp_path, monkeypatch, core):
    """As mpremote does: no --port and no $NPU_PORT takes the one board there is (a running
    `npu emulate` counts) and says which; none or several is one line saying what to do."""
    from tests.e2e.test_cli_errors import one_line
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))  # only this test's emulators
    monkeypatch.delenv("NPU_PORT", raising=False)
    assert "no board found" in one_line(npu("ls", check=False))
    first = Emulator(core, flash_dir=tmp_path / "a")
    try:
        r = npu("ls", "--json")
        assert json.loads(r.stdout)["models"] == [] and "using the board on %s" % first.port in r.stderr
        assert first.port in npu("ports").stdout
        npu("flash", DIGITS_INT8, "--name", "d")
        assert "d" in npu("ls", "-p", first.port).stdout
        second = Emulator(core, flash_dir=tmp_path / "b")
        try:
            line = one_line(npu("ls", check=False))
            assert "2 boards found" in line and first.port in line and second.port in line
        finally:
            second.stop()
        assert "using the board on %s" % first.port in npu("ls").stderr
    finally:
        first.stop()
    assert "no board found" in one_line(npu("ls", check=False))


def test_a_closed_pipe_is_no_traceback(board):
    """`npu ls | head -0`, `npu console | head -1`: stdout's reader is gone before npu writes."""
    emu = board
    npu("flash", DIGITS_INT8, "--name", "a", "-p", emu.port)
    npu("flash", DIGITS_INT8, "--name", "b", "-p", emu.port)
    for args in (["ls"], ["console", "--count", 3, "--seconds", 5], ["info"], ["zoo", "list"]):
        proc = subprocess.Popen([sys.executable, "-m", "npu_sdk"] + [str(a) for a in args]
                                + (["-p", emu.port] if args[0] != "zoo" else []),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc.stdout.close()  # as `| head -0` does
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == 141 and err == "", (args, err)


def test_firmware_build_takes_board_names(tmp_path):
    """`npu firmware build --board esp32-s3`: the name users know, not mpy-cross's -march."""
    from tests.e2e.test_cli_errors import one_line
    for board, arch in (("esp32-s3", "xtensawin"), ("rp2040", "armv6m"), ("pico2", "armv7emsp")):
        r = npu("firmware", "build", "--board", board, "--json", cwd=tmp_path)
        assert json.loads(r.stdout)["arch"] == arch
        manifest = tmp_path / ("npu-firmware-%s" % board) / "manifest.json"
        assert json.loads(manifest.read_text())["arch"] == arch
    line = one_line(npu("firmware", "build", "--board", "esp8266", cwd=tmp_path, check=False))
    assert "unknown board 'esp8266'" in line and "esp32-s3" in line and "mps3-an547" in line
