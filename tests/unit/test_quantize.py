"""Post-training quantization of a float model: accuracy, the int8 spec, bit-exactness, options."""
import copy
import json
import warnings

import numpy as np
import pytest

from npu_sdk import compiler, quantize, reference, tflite, tflite_writer
from npu_sdk.errors import ModelError, UnsupportedOpError
from npu_sdk.graph import Graph, Op, Tensor
from tests.conftest import DIGITS_INT8, ZOO

DIGITS = ZOO / "digits_mlp"
FLOAT = DIGITS / "float.tflite"


@pytest.fixture(scope="module")
def data():
    d = np.load(DIGITS / "test.npz")
    half = len(d["x"]) // 2
    return {"calib": d["x"][:half], "x": d["x"][half:], "y": d["y"][half:]}


@pytest.fixture(scope="module")
def float_graph():
    return tflite.load(FLOAT)


@pytest.fixture(scope="module")
def float_accuracy(data):
    model = FLOAT.read_bytes()
    return np.mean([np.argmax(reference.run_litert(model, [x])[0]) == y for x, y in zip(data["x"], data["y"])])


def tflm_accuracy(graph, data):
    model = tflite_writer.write(graph)
    interpreter = reference.tflm_interpreter(model)
    x_t = graph.tensors[graph.inputs[0]]
    hits = 0
    for x, y in zip(data["x"], data["y"]):
        if np.dtype(x_t.dtype) == np.int8:
            x = np.clip(np.floor(x / x_t.scale + 0.5) + x_t.zero_point, -128, 127)
        hits += np.argmax(reference.run_tflm(model, [x], interpreter)[0]) == y
    return hits / len(data["y"])


def layer(graph, fragment):
    (op,) = [op for op in graph.ops if fragment in graph.tensors[op.outputs[0]].name]
    return op


@pytest.mark.parametrize("method", quantize.METHODS)
def test_held_out_accuracy_within_one_point_of_float(float_graph, data, float_accuracy, method):
    g = quantize.quantize(float_graph, data["calib"], method=method)
    assert tflm_accuracy(g, data) >= float_accuracy - 0.01
    compiler.compile_graph(g)  # and the compiler takes it


def test_follows_the_int8_spec(float_graph, data):
    g = quantize.quantize(float_graph, data["calib"])
    assert [op.kind for op in g.ops] == ["QUANTIZE", "RESHAPE"] + ["FULLY_CONNECTED"] * 3 + [
        "SOFTMAX", "DEQUANTIZE"]
    assert g.tensors[g.inputs[0]].dtype == np.float32 and g.tensors[g.outputs[0]].dtype == np.float32
    assert g.tensors[g.outputs[0]].name == float_graph.tensors[float_graph.outputs[0]].name
    for op in g.ops:
        if op.kind == "FULLY_CONNECTED":
            x, w, b = (g.tensors[i] for i in op.inputs)
            assert w.dtype == np.int8 and len(w.scales) == w.shape[0] and w.quantized_dim == 0
            assert not np.any(w.zero_points) and w.data.min() >= -127
            assert b.dtype == np.int32 and not np.any(b.zero_points)
            np.testing.assert_array_equal(b.scales, np.float32(x.scale) * w.scales)
        elif op.kind == "RESHAPE":
            a, o = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
            assert (o.scale, o.zero_point) == (a.scale, a.zero_point)
        elif op.kind == "SOFTMAX":
            o = g.tensors[op.outputs[0]]
            assert (o.scale, o.zero_point) == (1 / 256, -128)
    x_in = g.tensors[g.ops[0].outputs[0]]  # inputs in [0, 1]: TF's 1/255, -128
    assert (x_in.dtype, np.float32(x_in.scale), x_in.zero_point) == (np.int8, np.float32(1 / 255), -128)


def test_weights_match_the_tflite_converter_bit_for_bit(float_graph, data):
    """int8.tflite was made by TF's converter; what does not depend on the calibration
    data (all weights; fc1's bias, whose input range is [0, 1]) must be identical."""
    g = quantize.quantize(float_graph, data["calib"], int8_io=True)
    tf = {t.name: t for t in tflite.load(DIGITS_INT8).tensors}
    for op in g.ops:
        if op.kind == "FULLY_CONNECTED":
            ours, theirs = g.tensors[op.inputs[1]], tf[g.tensors[op.inputs[1]].name]
            np.testing.assert_array_equal(ours.data, theirs.data)
            np.testing.assert_array_equal(ours.scales, theirs.scales)
    bias = g.tensors[layer(g, "fc1_1").inputs[2]]
    np.testing.assert_array_equal(bias.data, tf[bias.name].data)


def emulator_outputs_bit_exact_with_tflm(q, fed):
    """Run int8 graph `q` on each input of `fed` (shaped and typed as its input) on the emulator
    core (compiled blob, C kernels) and in TFLite Micro; assert both agree bit for bit and
    return the outputs, stacked."""
    from npu_emulator import _kernels
    from npufw.interp import Model

    model = tflite_writer.write(q)
    interpreter = reference.tflm_interpreter(model)
    board = Model(compiler.compile_graph(q).blob, _kernels)
    y_t = q.tensors[q.outputs[0]]
    got = []
    for x in fed:
        expected = reference.run_tflm(model, [x], interpreter)[0]
        board.set_input(0, x.tobytes())
        board.invoke()
        got.append(np.frombuffer(bytes(board.output(0)), dtype=y_t.dtype).reshape(expected.shape))
        np.testing.assert_array_equal(got[-1], expected)
    return np.stack(got)


@pytest.mark.parametrize("int8_io", [False, True], ids=["float-io", "int8-io"])
def test_tflm_and_emulator_core_bit_exact(float_graph, data, int8_io):
    g = quantize.quantize(float_graph, data["calib"], int8_io=int8_io)
    x_t = g.tensors[g.inputs[0]]
    rng = np.random.default_rng(0)
    inputs = list(data["x"][:40]) + [rng.uniform(-0.5, 1.5, (8, 8)).astype(np.float32) for _ in range(10)]
    fed = []
    for x in inputs:
        if int8_io:
            x = np.clip(np.floor(x / x_t.scale + 0.5) + x_t.zero_point, -128, 127).astype(np.int8)
        fed.append(np.asarray(x, dtype=x_t.dtype).reshape(x_t.shape))
    emulator_outputs_bit_exact_with_tflm(g, fed)


def test_report_is_worst_first_data(float_graph, data):
    r = quantize.quantize_with_report(float_graph, data["calib"], method="mse")
    assert r.warnings == []
    rows = r.report
    assert sorted(row["op"] for row in rows) == sorted(["RESHAPE"] + ["FULLY_CONNECTED"] * 3 + ["SOFTMAX"])
    sqnr = [row["sqnr_db"] for row in rows]
    assert sqnr == sorted(sqnr) and all(s > 25 for s in sqnr)
    assert json.loads(json.dumps(rows)) == rows
    assert {row["method"] for row in rows if row["op"] == "FULLY_CONNECTED"} == {"mse"}
    assert "SQNR dB" in quantize.format_report(rows)


def test_range_methods():
    rng = np.random.default_rng(0)
    v = rng.laplace(0, 1, 50000).astype(np.float32)  # heavy tails, as activations have

    def mse(r):
        s, z = quantize.asymmetric_params(*r)
        return np.mean((v - quantize.fake_quantize(v, s, z)) ** 2)
    ranges = {m: quantize.choose_range(v, m, 99.9) for m in quantize.METHODS}
    assert ranges["minmax"] == (float(v.min()), float(v.max()))
    assert ranges["percentile"][1] == pytest.approx(np.percentile(v, 99.9))
    assert ranges["mse"][1] < v.max() and ranges["mse"][0] > v.min()
    assert mse(ranges["mse"]) < min(mse(ranges["minmax"]), mse(ranges["percentile"]))
    assert quantize.asymmetric_params(0.0, 0.0)[0] > 0  # all-zero tensors still get a usable scale
    assert quantize.asymmetric_params(0.0, 1.0) == (np.float32(1 / 255), -128)
    assert quantize.asymmetric_params(-1.0, 0.0)[1] == 127
    with pytest.raises(ModelError, match="unknown range method"):
        quantize.choose_range(v, "kl")


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_override_file_is_respected(float_graph, data, tmp_path, suffix):
    path = tmp_path / ("overrides" + suffix)
    if suffix == ".json":
        path.write_text(json.dumps({"fc2_1": {"per_tensor": True},
                                    "#3": {"method": "percentile", "percentile": 99.0}}))
    else:
        path.write_text('[fc2_1]\nper_tensor = true\n\n["#3"]\nmethod = "percentile"\npercentile = 99.0\n')
    r = quantize.quantize_with_report(float_graph, data["calib"], method="minmax",
                                      overrides=quantize.load_overrides(path))
    g = r.graph
    assert len(g.tensors[layer(g, "fc2_1").inputs[1]].scales) == 1
    assert len(g.tensors[layer(g, "fc1_1").inputs[1]].scales) == 32
    methods = {row["index"]: row["method"] for row in r.report}
    assert methods[3] == "percentile" and methods[1] == "minmax"
    fc3_out = np.concatenate([v.ravel() for v in quantize.calibrate(float_graph, [[x] for x in data["calib"]])[
        layer(float_graph, "fc3_1").outputs[0]]])
    expect = quantize.asymmetric_params(*quantize.choose_range(fc3_out, "percentile", 99.0))
    out = g.tensors[layer(g, "fc3_1").outputs[0]]
    assert (out.scale, out.zero_point) == pytest.approx(expect)


def test_bad_overrides_are_model_errors(float_graph, data):
    with pytest.raises(ModelError, match="matches no layers.*fc1_1"):
        quantize.quantize(float_graph, data["calib"], overrides={"conv9": {"method": "mse"}})
    with pytest.raises(ModelError, match="matches 3 layers"):
        quantize.quantize(float_graph, data["calib"], overrides={"MatMul": {"method": "mse"}})
    with pytest.raises(ModelError, match="fixed by the int8 spec"):
        quantize.quantize(float_graph, data["calib"], overrides={"#4": {"method": "mse"}})
    with pytest.raises(ModelError, match="settings must be"):
        quantize.quantize(float_graph, data["calib"], overrides={"#1": {"methd": "mse"}})


def test_unquantizable_op_is_named_with_its_index(float_graph, data):
    g = copy.deepcopy(float_graph)
    g.ops[2].kind = "EXP"
    with pytest.raises(UnsupportedOpError) as info:
        quantize.quantize(g, data["calib"])
    assert [(i, name) for i, name, _ in info.value.problems] == [(2, "EXP")]
    assert "op #2 EXP" in str(info.value) and "cannot quantize" in str(info.value)


def test_int8_model_is_refused(data):
    with pytest.raises(UnsupportedOpError, match="already quantized"):
        quantize.quantize(tflite.load(DIGITS_INT8), data["calib"])


def test_small_calibration_set_warns(float_graph, data):
    with pytest.warns(quantize.CalibrationWarning, match="10 samples"):
        quantize.quantize(float_graph, data["calib"][:10])


def test_unstable_ranges_warn(float_graph, data):
    calib = np.concatenate([data["calib"][:100] * 0.3, data["calib"][100:]])
    r = quantize.quantize_with_report(float_graph, calib)
    assert any("differs" in w and "fc1_1" in w for w in r.warnings)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quantize.quantize(float_graph, data["calib"])  # the real data: no warning


def test_calibration_forms_agree(float_graph, data):
    a = quantize.quantize(float_graph, data["calib"])

    def representative_dataset():
        for x in data["calib"]:
            yield [x[None]]
    b = quantize.quantize(float_graph, representative_dataset)
    assert tflite_writer.write(a) == tflite_writer.write(b)
    with pytest.raises(ModelError, match="shape"):
        quantize.quantize(float_graph, np.zeros((120, 7, 7), np.float32))


def test_writer_round_trips_the_float_model(float_graph, data):
    model = tflite_writer.write(float_graph)
    for x in data["x"][:5]:
        np.testing.assert_array_equal(reference.run_litert(model, [x])[0],
                                      reference.run_litert(FLOAT.read_bytes(), [x])[0])


def conv_graph(rng):
    """A float CONV_2D -> DEPTHWISE_CONV_2D -> RESHAPE -> FULLY_CONNECTED -> SOFTMAX graph."""
    f32 = np.float32
    t = [Tensor("x", (1, 6, 6, 2), f32),
         Tensor("conv/w", (4, 3, 3, 2), f32, data=rng.normal(0, 0.5, (4, 3, 3, 2)).astype(f32)),
         Tensor("conv/b", (4,), f32, data=rng.normal(0, 0.1, 4).astype(f32)),
         Tensor("conv", (1, 6, 6, 4), f32),
         Tensor("dw/w", (1, 3, 3, 4), f32, data=(rng.normal(0, 0.5, (1, 3, 3, 4)) * [1, 2, 4, 8]).astype(f32)),
         Tensor("dw/b", (4,), f32, data=rng.normal(0, 0.1, 4).astype(f32)),
         Tensor("dw", (1, 4, 4, 4), f32),
         Tensor("shape", (2,), np.int32, data=np.array([1, 64], np.int32)),
         Tensor("flat", (1, 64), f32),
         Tensor("fc/w", (10, 64), f32, data=rng.normal(0, 0.2, (10, 64)).astype(f32)),
         Tensor("fc/b", (10,), f32, data=np.zeros(10, f32)),
         Tensor("logits", (1, 10), f32),
         Tensor("probs", (1, 10), f32)]
    conv = dict(padding="SAME", stride_w=1, stride_h=1, dilation_w=1, dilation_h=1, activation="RELU")
    ops = [Op("CONV_2D", [0, 1, 2], [3], conv, 0),
           Op("DEPTHWISE_CONV_2D", [3, 4, 5], [6], dict(conv, padding="VALID", depth_multiplier=1,
                                                        activation="NONE"), 1),
           Op("RESHAPE", [6, 7], [8], {}, 2),
           Op("FULLY_CONNECTED", [8, 9, 10], [11], {"activation": "NONE"}, 3),
           Op("SOFTMAX", [11], [12], {"beta": 1.0}, 4)]
    return Graph(t, ops, [0], [12], "convnet")


def test_conv_and_depthwise_per_channel_axes_and_accuracy_in_tflm():
    rng = np.random.default_rng(0)
    g = conv_graph(rng)
    calib = rng.uniform(0, 1, (120, 1, 6, 6, 2)).astype(np.float32)
    q = quantize.quantize(g, calib)
    conv_w, dw_w = q.tensors[1], q.tensors[4]
    assert (conv_w.dtype, len(conv_w.scales), conv_w.quantized_dim) == (np.int8, 4, 0)
    assert (dw_w.dtype, len(dw_w.scales), dw_w.quantized_dim) == (np.int8, 4, 3)
    assert np.all(np.abs(dw_w.data).max(axis=(0, 1, 2)) == 127)  # each channel uses its whole range
    np.testing.assert_array_equal(q.tensors[5].scales, np.float32(q.tensors[3].scale) * dw_w.scales)
    float_model, int8_model = tflite_writer.write(g), tflite_writer.write(q)
    interpreter = reference.tflm_interpreter(int8_model)
    x = rng.uniform(0, 1, (30, 1, 6, 6, 2)).astype(np.float32)
    f = np.stack([reference.run_litert(float_model, [xi])[0] for xi in x])
    y = np.stack([reference.run_tflm(int8_model, [xi], interpreter)[0] for xi in x])
    assert quantize.sqnr_db(f, y) > 25


def residual_graph(rng):
    """A float CONV_2D -> CONV_2D -> ADD(shortcut, RELU) -> ADD(constant) -> MEAN ->
    FULLY_CONNECTED -> LOGISTIC graph: the ops whose outputs are calibrated without weights."""
    f32 = np.float32
    t = [Tensor("x", (1, 6, 6, 4), f32),
         Tensor("c1/w", (4, 3, 3, 4), f32, data=rng.normal(0, 0.3, (4, 3, 3, 4)).astype(f32)),
         Tensor("c1/b", (4,), f32, data=rng.normal(0, 0.1, 4).astype(f32)),
         Tensor("c1", (1, 6, 6, 4), f32),
         Tensor("c2/w", (4, 3, 3, 4), f32, data=rng.normal(0, 0.3, (4, 3, 3, 4)).astype(f32)),
         Tensor("c2/b", (4,), f32, data=rng.normal(0, 0.1, 4).astype(f32)),
         Tensor("c2", (1, 6, 6, 4), f32),
         Tensor("sum", (1, 6, 6, 4), f32),
         Tensor("offset", (1, 1, 1, 4), f32, data=np.array([-0.5, 0.0, 0.25, 1.0], f32).reshape(1, 1, 1, 4)),
         Tensor("shifted", (1, 6, 6, 4), f32),
         Tensor("axes", (2,), np.int32, data=np.array([1, 2], np.int32)),
         Tensor("pooled", (1, 4), f32),
         Tensor("fc/w", (3, 4), f32, data=rng.normal(0, 0.5, (3, 4)).astype(f32)),
         Tensor("fc/b", (3,), f32, data=np.zeros(3, f32)),
         Tensor("logits", (1, 3), f32),
         Tensor("probs", (1, 3), f32)]
    conv = dict(padding="SAME", stride_w=1, stride_h=1, dilation_w=1, dilation_h=1, activation="RELU")
    ops = [Op("CONV_2D", [0, 1, 2], [3], conv, 0),
           Op("CONV_2D", [3, 4, 5], [6], dict(conv, activation="NONE"), 1),
           Op("ADD", [6, 0], [7], {"activation": "RELU"}, 2),
           Op("ADD", [7, 8], [9], {"activation": "NONE"}, 3),
           Op("MEAN", [9, 10], [11], {"keep_dims": False}, 4),
           Op("FULLY_CONNECTED", [11, 12, 13], [14], {"activation": "NONE"}, 5),
           Op("LOGISTIC", [14], [15], {}, 6)]
    return Graph(t, ops, [0], [15], "residual")


@pytest.mark.parametrize("int8_io", [False, True], ids=["float-io", "int8-io"])
def test_add_mean_logistic_follow_the_spec_and_are_bit_exact(int8_io):
    rng = np.random.default_rng(1)
    g = residual_graph(rng)
    calib = rng.uniform(-1, 1, (120, 1, 6, 6, 4)).astype(np.float32)
    q = quantize.quantize(g, calib, method="minmax", int8_io=int8_io)
    by_name = {t.name: t for t in q.tensors}
    # ADD: each input keeps its producer's quantization, the output range is the calibrated one
    f_sum = np.concatenate([f[7].ravel() for f in reference.litert_all_tensors(
        tflite_writer.write(g), [[x] for x in calib], [7])])
    assert (by_name["sum"].scale, by_name["sum"].zero_point) == quantize.asymmetric_params(0.0, f_sum.max())
    add = next(op for op in q.ops if op.kind == "ADD")
    assert q.tensors[add.inputs[1]].dtype == np.int8 and q.tensors[add.inputs[0]] is by_name["c2"]
    offset = by_name["offset"]  # a constant operand: per-tensor asymmetric over its values
    assert offset.dtype == np.int8 and (offset.scale, offset.zero_point) == quantize.asymmetric_params(-0.5, 1.0)
    assert (by_name["probs" if int8_io else "probs_int8"].scale,
            by_name["probs" if int8_io else "probs_int8"].zero_point) == (1 / 256, -128)
    # bit-exact: the emulator core (compiled blob, C kernels) against TFLite Micro
    x_t = q.tensors[q.inputs[0]]
    xs = rng.uniform(-1.2, 1.2, (20, 1, 6, 6, 4)).astype(np.float32)
    fed = [np.asarray(np.clip(np.floor(x / x_t.scale + 0.5) + x_t.zero_point, -128, 127) if int8_io else x,
                      dtype=x_t.dtype).reshape(x_t.shape) for x in xs]
    got = emulator_outputs_bit_exact_with_tflm(q, fed).astype(np.float32)
    if int8_io:
        got = (got + 128) / 256
    f = np.stack([reference.run_litert(tflite_writer.write(g), [x])[0] for x in xs])
    assert quantize.sqnr_db(f, got) > 25


def one_op_graph(kind):
    """input (1, 4, 4, 3) -> CONV_2D 1x1 -> `kind` (with a constant operand where it takes one)."""
    f32, rng = np.float32, np.random.default_rng(2)
    t = [Tensor("x", (1, 4, 4, 3), f32),
         Tensor("w", (3, 1, 1, 3), f32, data=rng.normal(0, 1, (3, 1, 1, 3)).astype(f32)),
         Tensor("b", (3,), f32, data=np.zeros(3, f32)),
         Tensor("c", (1, 4, 4, 3), f32)]
    out_shape, extra, options = (1, 4, 4, 3), [], {}
    if kind == "MUL":
        t.append(Tensor("k", (1, 1, 1, 3), f32, data=np.array([0.5, -2.0, 1.5], f32).reshape(1, 1, 1, 3)))
        extra, options = [len(t) - 1], {"activation": "NONE"}
    elif kind == "PAD":
        t.append(Tensor("p", (4, 2), np.int32, data=np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32)))
        extra, out_shape = [len(t) - 1], (1, 6, 6, 3)
    elif kind == "LEAKY_RELU":
        options = {"alpha": 0.2}
    t.append(Tensor("y", out_shape, f32))
    conv = dict(padding="VALID", stride_w=1, stride_h=1, dilation_w=1, dilation_h=1, activation="NONE")
    ops = [Op("CONV_2D", [0, 1, 2], [3], conv, 0), Op(kind, [3] + extra, [len(t) - 1], options, 1)]
    return Graph(t, ops, [0], [len(t) - 1], kind.lower())


@pytest.mark.parametrize("kind", ["MUL", "TANH", "RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH", "PAD"])
def test_pointwise_ops_quantize_and_run_bit_exact(kind):
    g = one_op_graph(kind)
    rng = np.random.default_rng(3)
    q = quantize.quantize(g, rng.uniform(-2, 2, (100, 1, 4, 4, 3)).astype(np.float32))
    xs = rng.uniform(-2, 2, (10, 1, 4, 4, 3)).astype(np.float32)
    got = emulator_outputs_bit_exact_with_tflm(q, xs)
    assert got.dtype == np.float32  # float I/O kept
    f = np.stack([reference.run_litert(tflite_writer.write(g), [x])[0] for x in xs])
    assert quantize.sqnr_db(f, got) > 25


def test_leaky_relu_keeps_its_leak():
    """alpha 0.2 survives calibration (which runs the graph tflite_writer wrote back): the
    reference here is numpy on the Graph itself, never a file the writer wrote."""
    g = one_op_graph("LEAKY_RELU")
    w = g.tensors[1].data[:, 0, 0, :]
    rng = np.random.default_rng(4)
    q = quantize.quantize(g, rng.uniform(-2, 2, (100, 1, 4, 4, 3)).astype(np.float32))
    xs = rng.uniform(-2, 2, (10, 1, 4, 4, 3)).astype(np.float32)
    got = emulator_outputs_bit_exact_with_tflm(q, xs)
    conv = xs @ w.T  # the 1x1 convolution, zero bias
    expected = np.where(conv > 0, conv, 0.2 * conv)
    assert got.min() < 0.5 * expected.min()  # negatives are leaked, not clamped to zero
    assert quantize.sqnr_db(expected.reshape(got.shape), got) > 25
