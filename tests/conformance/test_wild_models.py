"""Models from the wild (issue 15): graphs built in the shapes converters and model authors
leave behind, each compiled and run on the emulator core bit-exact with TFLite Micro."""
import numpy as np
import pytest

from npu_sdk import cli, compiler, reference, tflite
from npu_sdk.errors import ModelWarning
from npufw.interp import Model
from tools import tflite_build

_kernels = pytest.importorskip("npu_emulator._kernels")


def run_core(blob, xs):
    """Outputs of the blob on the CPython core's C kernels, one per input."""
    board = Model(blob, _kernels)
    out = []
    for x in xs:
        board.set_input(0, np.ascontiguousarray(x).tobytes())
        board.invoke()
        out.append(bytes(board.output(0)))
    return out


def assert_bit_exact_with_tflm(model_bytes, graph, xs):
    interpreter = reference.tflm_interpreter(model_bytes)
    got = run_core(compiler.compile_graph(graph).blob, xs)
    for x, g in zip(xs, got):
        expected = reference.run_tflm(model_bytes, [x], interpreter)[0]
        np.testing.assert_array_equal(np.frombuffer(g, expected.dtype).reshape(expected.shape),
                                      expected)


# --- item 1: a bias quantized on axis 3 of its one axis (tflite-micro's person_detect) -----

def person_detect_conv(rng):
    """MobilenetV1's first layer as person_detect.tflite carries it: per-channel CONV_2D 3x3
    stride 2, its int32 bias's quantized_dimension left at the filter's 3 on a shape (8,)."""
    w = rng.integers(-127, 128, (8, 3, 3, 1)).astype(np.int8)
    scales = rng.uniform(0.002, 0.02, 8).astype(np.float32)
    bias = rng.integers(-2000, 2000, 8).astype(np.int32)
    return tflite_build.conv2d_model((1, 12, 12, 1), (0.02, -3), w, scales, bias, (0.05, -128),
                                     stride=(2, 2), activation="RELU6", bias_axis=3)


def test_bias_on_axis_3_is_read_as_tflm_reads_it_with_a_warning(tmp_path, capsys):
    rng = np.random.default_rng(15)
    model = person_detect_conv(rng)
    with pytest.warns(ModelWarning, match=r"tensor 'bias' has 8 per-channel scales on axis 3 "
                                          r"of its 1-D shape \(8,\); read on axis 0"):
        graph = tflite.parse(model)
    xs = [rng.integers(-128, 128, (1, 12, 12, 1)).astype(np.int8) for _ in range(4)]
    assert_bit_exact_with_tflm(model, graph, xs)
    path = tmp_path / "person_detect_like.tflite"
    path.write_bytes(model)
    assert cli.main(["compile", str(path)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "'bias'" in warnings[0]
