"""tflite_writer is the inverse of the reader on every model the project has: the quantizer
calibrates, and validate and the tests compare, on graphs the writer wrote back, so an
option it drops (a LEAKY_RELU's alpha) silently changes the arithmetic."""
import numpy as np
import pytest

from npu_sdk import tflite, tflite_writer
from tests.conftest import ROOT, ZOO

MODELS = sorted((ROOT / "tests" / "conformance" / "models").glob("*.tflite")) + \
    sorted(ZOO.glob("*/*.tflite")) + sorted((ROOT / "tests" / "fixtures").glob("*.tflite"))


def test_every_model_is_found():
    assert len(MODELS) > 50 and any("zoo" in str(p) for p in MODELS)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: "%s/%s" % (p.parent.name, p.stem))
def test_parse_write_parse_keeps_every_tensor_and_option(path):
    g = tflite.load(path)
    back = tflite.parse(tflite_writer.write(g))
    assert (back.inputs, back.outputs) == (g.inputs, g.outputs)
    assert len(back.tensors) == len(g.tensors)
    for a, b in zip(g.tensors, back.tensors):
        assert (b.name, b.shape, np.dtype(b.dtype), b.quantized_dim) == \
            (a.name, a.shape, np.dtype(a.dtype), a.quantized_dim), a.name
        for x, y in ((a.scales, b.scales), (a.zero_points, b.zero_points), (a.data, b.data)):
            assert (x is None) == (y is None), a.name
            if x is not None:
                np.testing.assert_array_equal(y, x, err_msg=a.name)
    assert len(back.ops) == len(g.ops)
    for a, b in zip(g.ops, back.ops):
        assert (b.kind, b.inputs, b.outputs) == (a.kind, a.inputs, a.outputs)
        assert b.options.keys() == a.options.keys(), "op #%d %s" % (a.index, a.kind)
        for key, value in a.options.items():  # field by field, so a failure names the field
            assert b.options[key] == value, "op #%d %s option %s" % (a.index, a.kind, key)
