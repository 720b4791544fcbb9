"""The qemu board under `npu emulate --icount`: its clock counts instructions, so `npu run`
reports instructions per inference and per op, the same in every run to the clock's tick
(QEMU -icount shift=0)."""
import json

import numpy as np
import pytest

from tests.conftest import DIGITS_INT8, ZOO, Emulator

from .test_cli import npu


def test_run_reports_instructions_on_an_icount_board(tmp_path):
    emu = Emulator("qemu", flash_dir=tmp_path / "flash", icount=True)
    x = tmp_path / "x.npy"
    np.save(x, np.load(ZOO / "digits_mlp" / "samples.npz")["x_int8"][:1])

    def run():
        return json.loads(npu("run", "digits", "--input", x, "--port", emu.port, "--repeat", 3,
                              "--profile", "--json").stdout)
    try:
        info = json.loads(npu("info", "--port", emu.port, "--json").stdout)
        assert "icount" in info["features"] and info["kernels"].startswith("native (")
        npu("flash", DIGITS_INT8, "--port", emu.port, "--name", "digits")
        run()  # the run after a model's load also pays for collecting its garbage
        first = run()
        # requests between runs leave the heap in other states: an inference that allocates
        # (a block's search through the heap) would count differently after them
        later = []
        for i in range(5):  # names of other lengths: objects of other sizes
            npu("flash", ZOO / "anomaly_ae" / "int8.tflite", "--port", emu.port, "--name",
                "m" * (6 * i + 1))
            npu("ls", "--port", emu.port)
            npu("info", "--port", emu.port)
            later.append(run())
    finally:
        emu.stop()
    assert first["instructions_median"] == round(first["median_us"] * 1000) > 0
    assert [op["instructions"] for op in first["profile"]] == [
        op["us"] * 1000 for op in first["profile"]]
    assert sum(op["instructions"] > 0 for op in first["profile"]) >= 1
    # counts, not times: they agree to the board clock's tick (it reads whole microseconds,
    # 1,000 instructions, and the tick's phase at the start differs)
    assert [r["instructions_median"] for r in later] == pytest.approx(
        [first["instructions_median"]] * len(later), abs=1000)
    for r in later:  # per op: each a mean over 3 runs, rounded
        assert [op["instructions"] for op in r["profile"]] == pytest.approx(
            [op["instructions"] for op in first["profile"]], abs=2000)


def test_run_reports_no_instructions_on_a_wall_clock_board(emulator, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.load(ZOO / "digits_mlp" / "samples.npz")["x_int8"][:1])
    npu("flash", DIGITS_INT8, "--port", emulator.port, "--name", "digits")
    report = json.loads(npu("run", "digits", "--input", x, "--port", emulator.port, "--json").stdout)
    assert "instructions_median" not in report
