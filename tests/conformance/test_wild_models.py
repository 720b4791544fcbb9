"""Models from the wild (issue 15): graphs built in the shapes converters and model authors
leave behind, each compiled and run on the emulator core bit-exact with TFLite Micro."""
import numpy as np
import pytest

from npu_sdk import cli, compiler, quantize, reference, rewrite, tflite, tflite_writer, validate
from npu_sdk.errors import ModelWarning
from npu_sdk.graph import Graph, Tensor
from npu_sdk.graph import Op as GOp
from npufw.interp import Model
from tests.conftest import ROOT
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


def test_bias_on_axis_3_is_read_as_tflm_reads_it_with_a_warning(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # compile without -o writes to the current directory
    rng = np.random.default_rng(15)
    model = person_detect_conv(rng)
    with pytest.warns(ModelWarning, match=r"tensor 'bias' has 8 per-channel scales on axis 3 "
                                          r"of its 1-D shape \(8,\); read on axis 0"):
        graph = tflite.parse(model)
    xs = [rng.integers(-128, 128, (1, 12, 12, 1)).astype(np.int8) for _ in range(4)]
    assert_bit_exact_with_tflm(model, graph, xs)
    path = tmp_path / "person_detect_like.tflite"
    path.write_bytes(model)
    assert cli.main(["compile", str(path)]) == 0 and (tmp_path / "person_detect_like.npb").exists()
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "'bias'" in warnings[0]


# --- item 3: a float Keras model with Flatten, whose shape the converter computes ----------

def keras_flatten_float(rng):
    """Conv2D -> Flatten -> Dense as TFLiteConverter writes a float Keras model with a dynamic
    batch: SHAPE -> STRIDED_SLICE (the batch) -> PACK(batch, -1) is RESHAPE's shape."""
    f32, i32 = np.float32, np.int32

    def const(name, value, dtype):
        value = np.asarray(value, dtype)
        return Tensor(name, value.shape, dtype, data=value)

    t = [Tensor("input", (1, 6, 6, 2), f32),
         const("conv/w", rng.normal(0, 0.5, (4, 3, 3, 2)), f32), const("conv/b", rng.normal(0, 0.1, 4), f32),
         Tensor("conv", (1, 6, 6, 4), f32), Tensor("flatten/Shape", (4,), i32),
         const("flatten/begin", [0], i32), const("flatten/end", [1], i32), const("flatten/stride", [1], i32),
         Tensor("flatten/strided_slice", (), i32), const("flatten/Reshape/shape/1", -1, i32),
         Tensor("flatten/Reshape/shape", (2,), i32), Tensor("flatten/Reshape", (1, 144), f32),
         const("dense/w", rng.normal(0, 0.1, (5, 144)), f32), const("dense/b", rng.normal(0, 0.1, 5), f32),
         Tensor("dense", (1, 5), f32)]
    conv = dict(padding="SAME", stride_w=1, stride_h=1, dilation_w=1, dilation_h=1, activation="RELU")
    ops = [GOp("CONV_2D", [0, 1, 2], [3], conv, 0),
           GOp("SHAPE", [3], [4], {"out_type": tflite.schema.TensorType.INT32}, 1),
           GOp("STRIDED_SLICE", [4, 5, 6, 7], [8], {"shrink_axis_mask": 1}, 2),
           GOp("PACK", [8, 9], [10], {"values_count": 2, "axis": 0}, 3),
           GOp("RESHAPE", [3, 10], [11], {}, 4),
           GOp("FULLY_CONNECTED", [11, 12, 13], [14], {"activation": "NONE"}, 5)]
    return tflite_writer.write(Graph(t, ops, [0], [14], "keras_flatten"))


def test_float_model_with_flatten_quantizes_and_runs_bit_exact(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    model = keras_flatten_float(rng)
    calib = rng.uniform(-1, 1, (128, 1, 6, 6, 2)).astype(np.float32)
    q = quantize.quantize(tflite.parse(model), calib)
    xs = rng.uniform(-1, 1, (8, 1, 6, 6, 2)).astype(np.float32)
    q_model = tflite_writer.write(q)
    assert_bit_exact_with_tflm(q_model, q, xs)
    got = np.stack([reference.run_tflm(q_model, [x])[0] for x in xs])
    expected = np.stack([reference.run_litert(model, [x])[0] for x in xs])
    assert quantize.sqnr_db(expected, got) > 25
    (tmp_path / "flatten_float.tflite").write_bytes(model)
    np.save(tmp_path / "calib.npy", calib)
    assert cli.main(["compile", str(tmp_path / "flatten_float.tflite"), "--calib",
                     str(tmp_path / "calib.npy")]) == 0, capsys.readouterr().err
    assert (tmp_path / "flatten_float.npb").exists()


# --- item 2: dilated convolutions (SPACE_TO_BATCH_ND, conv, BATCH_TO_SPACE_ND) ---------------

def static_dilated(fixture, static=True):
    """The converter's dilated-conv pattern with a static batch (the fixture's batch-space
    tensors carry the dynamic batch as 1, which TFLite Micro does not resize)."""
    graph = tflite.load(ROOT / "tests" / "fixtures" / fixture)
    if not static:
        return tflite_writer.write(graph)
    blocks = int(np.prod(graph.tensors[graph.ops[0].inputs[1]].data))
    for op in graph.ops[:2]:
        t = graph.tensors[op.outputs[0]]
        t.shape = (blocks,) + tuple(t.shape[1:])
    return tflite_writer.write(graph)


@pytest.mark.parametrize("fixture", ["dilated_conv_valid_int8.tflite", "dilated_conv_same_int8.tflite",
                                     "dilated_depthwise_int8.tflite"])
@pytest.mark.parametrize("static", [True, False], ids=["static_batch", "dynamic_batch"])
def test_dilated_conv_is_bit_exact_with_tflm(fixture, static):
    """Where TFLite Micro's SPACE_TO_BATCH_ND reads its unset pad value (SAME, a non-zero
    zero point) or leaves blocks unwritten (a dynamic batch), the oracle is TFLite Micro on
    the fused convolution (validate does the same)."""
    model = static_dilated(fixture, static)
    graph = tflite.parse(model)
    undefined = validate.tflm_undefined(graph)
    assert bool(undefined) == ("same" in fixture or "depthwise" in fixture or not static)
    oracle = model if not undefined else tflite_writer.write(
        rewrite.simplify(graph, (rewrite.fold_dilated_conv,)))
    rng = np.random.default_rng(2)
    x_shape = graph.tensors[graph.inputs[0]].shape
    xs = [rng.integers(-128, 128, x_shape).astype(np.int8) for _ in range(8)]
    assert_bit_exact_with_tflm(oracle, graph, xs)


# --- item 5: the blob is no larger than the .tflite (MLPerf Tiny's AD autoencoder) ----------

def ad_autoencoder(rng):
    """FULLY_CONNECTED 640-128-128-128-128-8-128-128-128-128-640 with per-tensor int8 weights
    (what the converter gives a Keras Dense), as MLPerf Tiny's anomaly detection model."""
    dims = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640]
    i8, i32 = np.dtype(np.int8), np.dtype(np.int32)
    t = [Tensor("input", (1, 640), i8, np.array([0.05], np.float32), np.array([3]))]
    ops = []
    for k, (a, b) in enumerate(zip(dims, dims[1:])):
        ws = np.array([rng.uniform(0.001, 0.004)], np.float32)
        t += [Tensor("dense_%d/w" % k, (b, a), i8, ws, np.zeros(1, np.int64), 0,
                     rng.integers(-127, 128, (b, a)).astype(np.int8)),
              Tensor("dense_%d/b" % k, (b,), i32, ws * np.float32(0.05), np.zeros(1, np.int64), 0,
                     rng.integers(-3000, 3000, b).astype(np.int32)),
              Tensor("dense_%d" % k, (1, b), i8, np.array([0.05], np.float32), np.array([-5]))]
        ops.append(GOp("FULLY_CONNECTED", [len(t) - 4, len(t) - 3, len(t) - 2], [len(t) - 1],
                       {"activation": "RELU" if k < 9 else "NONE"}, k))
    return tflite_writer.write(Graph(t, ops, [0], [len(t) - 1], "ad"))


def test_ad_autoencoder_blob_is_no_larger_than_its_tflite():
    rng = np.random.default_rng(5)
    model = ad_autoencoder(rng)
    graph = tflite.parse(model)
    blob = compiler.compile_graph(graph).blob
    assert len(blob) <= len(model), (len(blob), len(model))
    assert_bit_exact_with_tflm(model, graph, [rng.integers(-128, 128, (1, 640)).astype(np.int8)
                                              for _ in range(4)])


# --- item 6: micro_speech's depthwise 10x8, stride 2, depth multiplier 8 ----------------------

def test_micro_speech_shape_is_bit_exact_with_tflm():
    """The depthwise convolution with depth multiplier 8 takes the vector path (channels
    repeated, two taps per vector: tests/conformance/test_c_dispatch.py checks it against
    the scalar one); here the whole model against TFLite Micro. Speed: tools/bench.py."""
    from tools import bench_kernels
    model = bench_kernels.int8_model(bench_kernels.micro_speech())
    graph = tflite.parse(model)
    dw = next(op for op in graph.ops if op.kind == "DEPTHWISE_CONV_2D")
    assert (dw.options["depth_multiplier"], graph.tensors[dw.inputs[1]].shape) == (8, (1, 10, 8, 8))
    rng = np.random.default_rng(6)
    assert_bit_exact_with_tflm(model, graph, [rng.integers(-128, 128, (1, 1960)).astype(np.int8)
                                              for _ in range(6)])
