"""Every bad input of issue 18 gives one `npu: ...` line (or one JSON error under --json) and a
non-zero exit, never a traceback; usage errors exit 2; a result is printed before a failed save."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import DIGITS_INT8, ZOO, Emulator

NPU = [sys.executable, "-m", "npu_sdk"]
SAMPLES = ZOO / "digits_mlp" / "samples.npz"


def npu(*args, check=True, cwd=None, env=None):
    env = dict(os.environ if env is None else env)
    proc = subprocess.run(NPU + [str(a) for a in args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def one_line(r, code=1):
    """The command failed with one `npu:` line on stderr and exit `code`."""
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("npu: "), r.stderr
    return lines[0]


@pytest.fixture(params=["cpython", "micropython"])
def board(request, tmp_path):
    emu = Emulator(request.param, flash_dir=tmp_path / "flash")
    yield emu
    emu.stop()


def test_zoo_samples_calibrate_a_float_model(tmp_path):
    out = tmp_path / "d.npb"
    r = npu("compile", ZOO / "digits_mlp" / "float.tflite", "--calib", SAMPLES, "-o", out)
    assert out.exists() and "Traceback" not in r.stderr


def test_host_side_bad_inputs(tmp_path):
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    assert "is empty" in one_line(npu("run", "m", "--input", empty, "--port", tmp_path / "tty",
                                      check=False))
    assert "no directory" in one_line(npu("inspect", DIGITS_INT8, "--plot", tmp_path / "no" / "a.png",
                                          check=False))
    assert "no directory" in one_line(npu("compile", DIGITS_INT8, "-o", tmp_path / "no" / "d.npb",
                                          check=False))
    assert "cannot read calibration" in one_line(npu(
        "compile", ZOO / "digits_mlp" / "float.tflite", "--calib", empty, "-o", tmp_path / "d.npb",
        check=False))


def test_usage_errors_exit_2_and_json_errors(tmp_path):
    r = npu("ls", "--bogus", check=False)
    assert r.returncode == 2 and "usage:" in r.stderr and "Traceback" not in r.stderr
    r = npu("ls", "--json", "--bogus", check=False)
    assert r.returncode == 2 and json.loads(r.stdout)["code"] == 2
    r = npu("ls", "--json", "--port", tmp_path / "no-tty", check=False)
    err = json.loads(r.stdout)
    assert r.returncode == 1 and err["code"] == 1 and "cannot open serial port" in err["error"]


def test_emulate_repl_makes_its_flash_dir(tmp_path):
    proc = subprocess.Popen(NPU + ["emulate", "--core", "micropython", "--repl", "--flash-dir",
                                   str(tmp_path / "new")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("port: ")
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert (tmp_path / "new").is_dir() and "Traceback" not in err


def test_run_result_survives_a_bad_output_path(board, tmp_path):
    port = board.port
    npu("flash", DIGITS_INT8, "--name", "digits", "--port", port)
    x = tmp_path / "x.npy"
    np.save(x, np.load(SAMPLES)["x_int8"][0])
    # a missing directory is refused before the run
    r = npu("run", "digits", "--input", x, "--output", tmp_path / "no" / "y.npy", "--port", port,
            check=False)
    assert "no directory" in one_line(r) and r.stdout == ""
    # a write that fails after the run: the result is on stdout first
    target = tmp_path / "y.npy"
    target.mkdir()  # a directory where the file should go: the rename fails
    r = npu("run", "digits", "--input", x, "--output", target, "--port", port, check=False)
    assert "cannot write" in one_line(r) and "invoke:" in r.stdout and "127" in r.stdout
