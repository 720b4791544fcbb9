"""The zoo's plugin test suite: every zoo model (int8 I/O; float I/O too but for vww, whose
float-input runs keep the emulated board busy ~10 s a sample against 2.4 s of line at 115200:
CPU, not line), on the board under test, each sample's output bit-exact with TFLite Micro.
A user's suite in miniature; tools/bench.py runs it across 1 and 3 boards of a farm (docs/farm.md):

    pytest tools/zoo_suite -n 3 --dist loadscope --no-loadscope-reorder --npu-places 'npu-*'

A class per model file, so with --dist loadscope a worker flashes a model once; vww, whose
samples take most of the line, is split in two. The classes that take longest come first,
and --no-loadscope-reorder keeps that order (xdist would put the classes with most tests
first), so xdist hands them out longest first to whichever worker is free.
"""
import functools

import numpy as np

from npu_sdk import reference, zoo


def pytest_generate_tests(metafunc):
    metafunc.parametrize("i", metafunc.cls.samples)


@functools.lru_cache(maxsize=None)
def expected(model, io):
    """(model path, samples, TFLite Micro's outputs), computed once per model file."""
    path = zoo.path(model) / ("int8.tflite" if io == "int8" else "int8_float_io.tflite")
    xs = np.load(zoo.path(model) / "samples.npz")["x_" + io]
    model_bytes = path.read_bytes()
    interpreter = reference.tflm_interpreter(model_bytes)
    return path, xs, [reference.run_tflm(model_bytes, [x], interpreter)[0] for x in xs]


class ZooModel:
    model, io, samples = None, "int8", range(16)

    def test_matches_tflite_micro(self, npu_board, npu_model, i):
        path, xs, ys = expected(self.model, self.io)
        y = npu_board.run(npu_model(path, name="%s_%s" % (self.model, self.io)), xs[i])
        np.testing.assert_array_equal(y, ys[i])


class TestVwwFirstHalf(ZooModel):
    model, samples = "vww_mobilenet", range(8)


class TestVwwSecondHalf(ZooModel):
    model, samples = "vww_mobilenet", range(8, 16)


class TestAnomalyAeFloat(ZooModel):
    model, io = "anomaly_ae", "float"


class TestKwsDscnnFloat(ZooModel):
    model, io = "kws_dscnn", "float"


class TestAnomalyAe(ZooModel):
    model = "anomaly_ae"


class TestKwsDscnn(ZooModel):
    model = "kws_dscnn"


class TestDigitsMlpFloat(ZooModel):
    model, io = "digits_mlp", "float"


class TestDigitsMlp(ZooModel):
    model = "digits_mlp"
