"""`npu run` checks data on the host before it travels (dtype, shape, count), quantizes float data
on request, takes .npz and several --input, saves every output; model names do not collide;
`npu compile` writes into the current directory; int8 calibration data for a float input warns."""
import json
import os

import numpy as np
import pytest

from npu_sdk import reference
from tests.conftest import DIGITS_INT8, ZOO, Emulator
from tests.e2e.test_cli_errors import SAMPLES, npu, one_line

KWS = ZOO / "kws_dscnn" / "int8.tflite"


@pytest.fixture(params=["cpython", "micropython"])
def board(request, tmp_path):
    emu = Emulator(request.param, flash_dir=tmp_path / "flash")
    emu.core = request.param
    yield emu
    emu.stop()


@pytest.fixture
def env(tmp_path):
    """The host's memory of flashed blobs in a fresh place: a run checks what this test flashed."""
    return dict(os.environ, NPU_CACHE=str(tmp_path / "cache"))


def test_inputs_checked_on_the_host(board, tmp_path, env):
    port = board.port
    npu("flash", DIGITS_INT8, "--name", "digits", "--port", port, env=env)
    samples = np.load(SAMPLES)
    files = {}
    for name, x in (("float", samples["x_float"][0]), ("uint8", samples["x_int8"][0].view(np.uint8)),
                    ("int8", samples["x_int8"][0])):
        files[name] = tmp_path / (name + ".npy")
        np.save(files[name], x)

    def run(*args):
        return npu("run", "digits", "--port", port, "--json", *args, check=False, env=env)

    line = one_line(run("--input", files["float"]))
    assert "input 0 wants int8 (1, 8, 8), got float32 (1, 8, 8)" in line and "--quantize" in line
    assert "input 0 wants int8 (1, 8, 8), got uint8 (1, 8, 8)" in one_line(run("--input", files["uint8"]))
    assert "takes 1 input(s), got 2" in one_line(run("--input", files["int8"], "--input", files["int8"]))

    expected = reference.run_tflm(DIGITS_INT8.read_bytes(), [samples["x_int8"][0]])[0]
    quantized = json.loads(run("--input", files["float"], "--quantize").stdout)
    assert quantized["outputs"][0]["data"] == expected.tolist()
    npz = tmp_path / "in.npz"
    np.savez(npz, samples["x_int8"][0])
    y = tmp_path / "y.npz"
    report = json.loads(run("--input", npz, "--output", y).stdout)
    # the CPython core's kernels run at the host's speed: its times are the host's
    assert report["median_us"] > 0 and report["clock"] == ("host" if board.core == "cpython"
                                                           else "board")
    with np.load(y) as saved:
        assert list(saved.files) == ["y0"]
        np.testing.assert_array_equal(saved["y0"], expected)


def test_zoo_models_keep_their_names(board, tmp_path, env):
    port = board.port
    for model in (DIGITS_INT8, KWS):
        npu("flash", model, "--port", port, env=env)
    names = [e["name"] for e in json.loads(npu("ls", "--port", port, "--json").stdout)["models"]]
    assert sorted(names) == ["digits_mlp", "kws_dscnn"]
    # a different blob under a name the board holds: said, and how to keep both
    r = npu("flash", KWS, "--name", "digits_mlp", "--port", port, env=env)
    assert "replaced the different model" in r.stdout and "--name" in r.stdout
    r = npu("flash", KWS, "--name", "digits_mlp", "--port", port, env=env)
    assert "replaced" not in r.stdout


def test_compile_writes_to_the_current_directory_and_warns_on_int8_calib(tmp_path):
    npu("compile", DIGITS_INT8, cwd=tmp_path)
    assert (tmp_path / "digits_mlp.npb").exists()
    calib = tmp_path / "x_int8.npy"
    np.save(calib, np.load(SAMPLES)["x_int8"])
    r = npu("compile", ZOO / "digits_mlp" / "float.tflite", "--calib", calib, "--report",
            cwd=tmp_path)
    assert "calibration data is int8 for the float input" in r.stderr
    assert r.stderr.count("calibration set has 16 samples") == 1
    assert "calibration set has" not in r.stdout


def test_host_time_comes_with_the_profiles_estimate(tmp_path):
    """The CPython core's times are the host's: `npu run` says so and gives the board
    profile's estimate next to them (the model's MACs at the profile's MAC rate)."""
    from npu_sdk import profiles
    emu = Emulator("cpython", flash_dir=tmp_path / "flash", board="cortex-m4-256k")
    try:
        npu("flash", ZOO / "kws_dscnn" / "int8.tflite", "--port", emu.port)
        x = tmp_path / "x.npy"
        np.save(x, np.load(ZOO / "kws_dscnn" / "samples.npz")["x_int8"][0])
        macs = json.loads(npu("inspect", ZOO / "kws_dscnn" / "int8.tflite",
                              "--json").stdout)["totals"]["macs"]
        rate = profiles.get("cortex-m4-256k")["macs_per_s"]
        text = npu("run", "kws_dscnn", "--input", x, "--port", emu.port).stdout
        assert "the host's clock" in text
        assert "estimate on cortex-m4-256k: %.3f ms (%d MACs" % (macs / rate * 1e3, macs) in text
        report = json.loads(npu("run", "kws_dscnn", "--input", x, "--port", emu.port,
                                "--json").stdout)
        assert report["clock"] == "host" and report["estimate_profile"] == "cortex-m4-256k"
        assert report["estimate_us"] == round(macs / rate * 1e6, 1)
    finally:
        emu.stop()
