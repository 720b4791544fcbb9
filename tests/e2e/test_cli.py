"""The `npu` CLI against `npu emulate` over a real pty, on both cores, checked against TFLite Micro."""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from npu_sdk import reference
from tests.conftest import DIGITS_FLOAT_IO, DIGITS_INT8, ZOO

NPU = [sys.executable, "-m", "npu_sdk"]


def npu(*args, check=True, env=None):
    proc = subprocess.run(NPU + [str(a) for a in args], capture_output=True, text=True, timeout=120,
                          env=env)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_ls_json_says_free_flash(emulator):
    def ls():
        return json.loads(npu("ls", "--port", emulator.port, "--json").stdout)
    empty = ls()
    npu("flash", DIGITS_INT8, "--port", emulator.port, "--name", "d")
    after = ls()
    size = after["models"][0]["size"]
    assert empty["models"] == [] and empty["flash"] == after["flash"] >= empty["free_flash"]
    assert size <= empty["free_flash"] - after["free_flash"] < size + 4096  # a block at most
    info = json.loads(npu("info", "--port", emulator.port, "--json").stdout)
    assert (info["free_flash"], info["flash"]) == (after["free_flash"], after["flash"])


@pytest.mark.parametrize("model", [DIGITS_INT8, DIGITS_FLOAT_IO], ids=["int8-io", "float-io"])
def test_compile_flash_run_bit_exact(emulator, tmp_path, model):
    blob = tmp_path / "digits.npb"
    npu("compile", model, "-o", blob)
    npu("flash", blob, "--port", emulator.port, "--name", "digits")
    listing = json.loads(npu("ls", "--port", emulator.port, "--json").stdout)["models"]
    assert [e["name"] for e in listing] == ["digits"]
    assert listing[0]["size"] == blob.stat().st_size

    samples = np.load(ZOO / "digits_mlp" / "samples.npz")
    key = "x_int8" if model == DIGITS_INT8 else "x_float"
    model_bytes = model.read_bytes()
    interpreter = reference.tflm_interpreter(model_bytes)
    env = dict(os.environ, NPU_PORT=emulator.port)  # the default port
    for i in range(4):
        x_path, y_path = tmp_path / ("x%d.npy" % i), tmp_path / ("y%d.npy" % i)
        np.save(x_path, samples[key][i])
        report = json.loads(npu("run", "digits", "--input", x_path, "--output", y_path,
                                "--repeat", 3, "--json", env=env).stdout)
        expected = reference.run_tflm(model_bytes, [samples[key][i]], interpreter)[0]
        got = np.load(y_path)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
        assert report["outputs"][0]["shape"] == list(expected.shape)
        assert report["outputs"][0]["dtype"] == str(expected.dtype)
        # the qemu board's native kernels can finish this small model within one tick of its
        # clock (QEMU without --icount); the other cores always measure some time
        assert report["median_us"] > 0 or emulator.core == "qemu"


def test_errors_are_one_clear_line(emulator, tmp_path):
    blob = tmp_path / "digits.npb"
    npu("compile", DIGITS_INT8, "-o", blob)
    npu("flash", blob, "--port", emulator.port)
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 8, 8), np.float32))  # float32 input for an int8 model
    r = npu("run", "digits", "--input", x, "--port", emulator.port, check=False)
    assert r.returncode == 1 and "input 0 wants int8 (1, 8, 8), got float32 (1, 8, 8)" in r.stderr
    r = npu("run", "nosuchmodel", "--input", x, "--port", emulator.port, check=False)
    assert r.returncode == 1 and "no model named 'nosuchmodel'" in r.stderr
    r = npu("flash", blob, "--name", "bad/name", "--port", emulator.port, check=False)
    assert r.returncode == 1 and "model name" in r.stderr
    # the board kept serving through all of it
    assert json.loads(npu("ls", "--port", emulator.port, "--json").stdout)["models"][0]["name"] == "digits"


def test_wrong_port(tmp_path):
    r = npu("ls", "--port", tmp_path / "no-such-tty", check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("npu: cannot open serial port") and "no-such-tty" in r.stderr


def test_silent_board_times_out():
    master, slave = os.openpty()  # a port where nothing answers
    try:
        r = npu("ls", "--port", os.ttyname(slave), "--timeout", "0.3", check=False)
    finally:
        os.close(master)
        os.close(slave)
    assert r.returncode == 1 and "no answer from the board" in r.stderr


def test_board_of_a_newer_protocol_says_update_the_host():
    """A board that answers HELLO with a protocol this SDK does not speak (a future firmware:
    scripted here, as none exists yet) stops every command with which side to update."""
    import threading
    from npu_sdk.link import codec
    master, slave = os.openpty()
    answered = []

    def board():
        deframer = codec.Deframer()
        while not answered:
            for raw in deframer.feed(os.read(master, 4096)):
                ftype, seq, _ = codec.decode(raw)
                if ftype == codec.HELLO:
                    answered.append(seq)
                    os.write(master, codec.encode(codec.HELLO | codec.RESPONSE, seq,
                                                  struct.pack("<H", codec.PROTOCOL_VERSION + 1)))
    thread = threading.Thread(target=board, daemon=True)
    thread.start()
    try:
        r = npu("ls", "--port", os.ttyname(slave), "--timeout", "2", check=False)
    finally:
        thread.join(5)
        os.close(master)
        os.close(slave)
    assert answered and r.returncode == 1
    assert r.stderr.strip().endswith("speaks link protocol %d, this host SDK %d: update the host SDK "
                                     "(pip install -U npu-sdk)" % (codec.PROTOCOL_VERSION + 1,
                                                                  codec.PROTOCOL_VERSION))


def test_compile_bad_input_leaves_nothing(tmp_path):
    out = tmp_path / "out.npb"
    r = npu("compile", tmp_path / "missing.tflite", "-o", out, check=False)
    assert r.returncode == 1 and "cannot read model" in r.stderr and not out.exists()
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(DIGITS_INT8.read_bytes()[:300])
    r = npu("compile", corrupt, "-o", out, check=False)
    assert r.returncode == 1 and str(corrupt) in r.stderr and not out.exists()
    assert list(tmp_path.iterdir()) == [corrupt]


def test_flash_tflite_directly(emulator, tmp_path):
    """`npu flash` takes a .tflite too (compiled on the fly); the name defaults to its stem."""
    r = json.loads(npu("flash", DIGITS_INT8, "--port", emulator.port, "--json").stdout)
    assert r["name"] == "digits_mlp"
    x = tmp_path / "x.npy"
    np.save(x, np.load(ZOO / "digits_mlp" / "samples.npz")["x_int8"][0])
    report = json.loads(npu("run", "digits_mlp", "--input", x, "--port", emulator.port, "--json").stdout)
    assert report["outputs"][0]["shape"] == [1, 10]


def test_flash_refuses_a_bad_file_before_opening_the_port(tmp_path):
    bad = tmp_path / "bad.npb"
    from npu_sdk import blob
    bad.write_bytes(b"NPUB" + blob.VERSION.to_bytes(2, "little") + bytes(98))  # damaged body
    r = npu("flash", bad, "--port", tmp_path / "no-such-tty", check=False)
    assert r.returncode == 1 and "npu: blob SHA-256 mismatch" in r.stderr
