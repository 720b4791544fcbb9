"""The zoo's plugin test suite: every zoo model, int8 and float I/O, on the board under test,
each sample's output bit-exact with TFLite Micro. A user's suite in miniature; tools/bench.py
runs it across 1 and 3 boards of a farm (docs/farm.md):

    pytest tools/zoo_suite -n 3 --dist loadscope --npu-places 'npu-*'

A class per model file, so with --dist loadscope a worker flashes a model once; the vww
models, whose samples take most of the line, are split in two. Big classes come first:
xdist hands them out in order to whichever worker is free.
"""
import numpy as np

from npu_sdk import reference, zoo


def pytest_generate_tests(metafunc):
    metafunc.parametrize("i", metafunc.cls.samples)


class ZooModel:
    model, io, samples = None, "int8", range(16)

    def test_matches_tflite_micro(self, npu_board, npu_model, i):
        path = zoo.path(self.model) / ("int8.tflite" if self.io == "int8" else "int8_float_io.tflite")
        x = np.load(zoo.path(self.model) / "samples.npz")["x_" + self.io][i]
        y = npu_board.run(npu_model(path, name="%s_%s" % (self.model, self.io)), x)
        np.testing.assert_array_equal(y, reference.run_tflm(path.read_bytes(), [x])[0])


class TestVwwFloatFirstHalf(ZooModel):
    model, io, samples = "vww_mobilenet", "float", range(8)


class TestVwwFloatSecondHalf(ZooModel):
    model, io, samples = "vww_mobilenet", "float", range(8, 16)


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
