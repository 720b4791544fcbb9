"""Shared test fixtures: paths to the zoo and the real emulator started as users start it."""
from pathlib import Path

import pytest

from npu_sdk.pytest_plugin import Emulator as PluginEmulator

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "model_zoo"
DIGITS_INT8 = ZOO / "digits_mlp" / "int8.tflite"
DIGITS_FLOAT_IO = ZOO / "digits_mlp" / "int8_float_io.tflite"


class Emulator(PluginEmulator):
    """`npu emulate` in a subprocess, started as the pytest plugin starts it; keyword options
    map to the command's: listen="socket://127.0.0.1:0", baud, faults, power_cut_after_writes."""

    def __init__(self, core="cpython", board="host", flash_dir=None, listen=None, baud=None,
                 faults=None, power_cut_after_writes=0):
        options = []
        for option, value in (("--listen", listen), ("--baud", baud), ("--faults", faults),
                              ("--power-cut-after-writes", power_cut_after_writes)):
            if value:
                options += [option, value]
        super().__init__(core, board, flash_dir, options=options)


@pytest.fixture(params=["cpython", "micropython"])
def emulator(request, tmp_path):
    emu = Emulator(request.param, flash_dir=tmp_path / "flash")
    yield emu
    emu.stop()


class StepClock:
    """A board clock that advances 7 µs per reading: deterministic times for vectors and tests."""

    def __init__(self):
        self.t = 0

    def ticks_us(self):
        self.t += 7
        return self.t

    @staticmethod
    def ticks_diff(a, b):
        return a - b


def fc_model(in_depth, out_depth, batches=1, seed=0):
    """A one-op int8 FULLY_CONNECTED model with seeded weights: (tflite bytes, blob bytes).
    The blob's size follows the weights (in_depth * out_depth), its arena the batch."""
    import numpy as np

    from npu_sdk import compiler, tflite
    from tests.conformance import tflite_build

    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (out_depth, in_depth)).astype(np.int8)
    bias = rng.integers(-1000, 1000, out_depth).astype(np.int32)
    model = tflite_build.fully_connected_model(in_depth, out_depth, batches, (0.05, -3), w, 0.01,
                                               bias, (0.2, 5))
    return model, compiler.compile_graph(tflite.parse(model)).blob
