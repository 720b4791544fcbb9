"""npu_sdk.validate against the emulator on both cores: every zoo int8 model is bit-exact
with TFLite Micro, and a deliberately broken layer is found by the layer-by-layer search."""
import json

import numpy as np
import pytest

from npu_sdk import compiler, tflite, tflite_writer, validate
from npu_sdk.errors import ModelError, NpuError
from npu_sdk.link import Board
from tests.conftest import CORES, DIGITS_INT8, ROOT, ZOO, Emulator

def _zoo_param(path):
    return pytest.param(path, id="%s/%s" % (path.parent.name, path.stem))


ZOO_INT8 = [_zoo_param(p) for p in sorted(ZOO.glob("*/int8*.tflite"))]


@pytest.fixture(scope="module", params=CORES)
def board(request, tmp_path_factory):
    emu = Emulator(request.param, flash_dir=tmp_path_factory.mktemp("flash"))
    try:
        with Board(emu.port) as b:
            yield b
    finally:
        emu.stop()


QEMU_SAMPLES = 4  # the qemu board's UART moves about 20 KB/s: VWW's 16 float samples take a minute


def _samples(model, core):
    path = model.parent / "samples.npz"
    if not path.exists():
        return None
    if core != "qemu":
        return path
    return validate.load_inputs(path, tflite.load(model))[:QEMU_SAMPLES]


@pytest.mark.parametrize("model", ZOO_INT8)
def test_zoo_models_are_bit_exact(board, model, request):
    rep = validate.validate(model, board, _samples(model, request.node.callspec.params["board"]))
    assert rep["bit_exact"], validate.format_text(rep)
    assert rep["max_lsb_tflm"] == 0 and rep["first_difference"] is None and rep["layers"] == []
    assert rep["samples"] >= 1 and rep["litert_error"] is None
    assert all(o["tflm"]["mismatched"] == 0 for o in rep["outputs"])
    json.dumps(rep)  # what `npu validate --json` prints
    assert "PASS" in validate.format_text(rep)


def test_generated_inputs_are_deterministic_and_bit_exact(board):
    rep = validate.validate(DIGITS_INT8, board)
    assert rep["bit_exact"] and rep["samples"] == validate.DEFAULT_SAMPLES
    assert rep["inputs"].startswith("generated")
    graph = tflite.load(DIGITS_INT8)
    a, b = validate.generate_inputs(graph), validate.generate_inputs(graph)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))


BROKEN_OP = 2  # digits_mlp: RESHAPE, FULLY_CONNECTED, FULLY_CONNECTED (#2), FULLY_CONNECTED, SOFTMAX


def _compile_with_broken_layer(model_bytes, source):
    """The compiler, except that op #BROKEN_OP's weights are altered (as a kernel-parameter bug
    would): every model cut at or after that op carries the fault, those cut before do not."""
    graph = tflite.parse(model_bytes, source=source)
    for op in graph.ops:
        if op.index == BROKEN_OP:
            w = graph.tensors[op.inputs[1]]
            data = w.data.astype(np.int16)
            data[:4] = np.clip(-data[:4] + 3, -127, 127)
            w.data = data.astype(np.int8)
    return compiler.compile_graph(graph).blob


def test_first_differing_layer_is_found(board):
    rep = validate.validate(DIGITS_INT8, board, ZOO / "digits_mlp" / "samples.npz",
                            compile_model=_compile_with_broken_layer)
    text = validate.format_text(rep)
    assert not rep["bit_exact"] and rep["max_lsb_tflm"] > 0, text
    first = rep["first_difference"]
    assert first is not None, text
    assert (first["index"], first["op"]) == (BROKEN_OP, "FULLY_CONNECTED"), text
    assert first["mismatched"] > 0 and first["first"]["board"] != first["first"]["expected"]
    assert [(r["index"], r["bit_exact"]) for r in rep["layers"]] == [(0, True), (1, True), (2, False)]
    assert "first differing layer: op #2 FULLY_CONNECTED" in text and "FAIL" in text
    json.dumps(rep)


# --- fused patterns: a dilated convolution (SPACE_TO_BATCH_ND, conv, BATCH_TO_SPACE_ND) -------

@pytest.fixture(scope="module")
def cpython_board(tmp_path_factory):
    emu = Emulator("cpython", flash_dir=tmp_path_factory.mktemp("flash"))
    try:
        with Board(emu.port) as b:
            yield b
    finally:
        emu.stop()


def static_dilated(tmp_path, fixture):
    """A Keras Conv2D(dilation_rate=2) as the converter writes it with a fixed batch (the
    fixture's, whose batch is dynamic, with the batch-space tensors' batch made static)."""
    graph = tflite.load(ROOT / "tests" / "fixtures" / fixture)
    s2b = graph.ops[0]
    blocks = int(np.prod(graph.tensors[s2b.inputs[1]].data))
    for op in graph.ops[:2]:
        t = graph.tensors[op.outputs[0]]
        t.shape = (blocks,) + tuple(t.shape[1:])
    path = tmp_path / fixture
    path.write_bytes(tflite_writer.write(graph))
    return path


def _compile_with_broken_conv(model_bytes, source):
    graph = tflite.parse(model_bytes, source=source)
    for op in graph.ops:
        if op.kind == "CONV_2D":
            w = graph.tensors[op.inputs[1]]
            w.data = np.clip(-w.data.astype(np.int16) + 3, -127, 127).astype(np.int8)
    return compiler.compile_graph(graph).blob


def test_a_differing_fused_pattern_is_named_with_the_ops_it_covers(cpython_board, tmp_path):
    path = static_dilated(tmp_path, "dilated_conv_valid_int8.tflite")
    rep = validate.validate(path, cpython_board, compile_model=_compile_with_broken_conv)
    text = validate.format_text(rep)
    assert not rep["bit_exact"] and rep.get("oracle") == "TFLite Micro", text
    label = "dilated CONV_2D (#0 SPACE_TO_BATCH_ND, #1 CONV_2D, #2 BATCH_TO_SPACE_ND)"
    assert rep["first_difference"]["op"] == label, text
    assert [r["op"] for r in rep["layers"]] == [label]  # no member op compared or skipped alone
    assert "first differing pattern: %s" % label in text and "skipped" not in text


def test_same_dilated_conv_where_tflm_reads_an_unset_pad_value(cpython_board, tmp_path):
    """TFLite Micro's SPACE_TO_BATCH_ND pads with whatever its arena held: validate says so and
    takes TFLite Micro's arithmetic on the fused dilated convolution as the oracle."""
    path = static_dilated(tmp_path, "dilated_conv_same_int8.tflite")
    rep = validate.validate(path, cpython_board)
    text = validate.format_text(rep)
    assert rep["oracle"] == validate.ORACLE_FUSED and rep["bit_exact"], text
    assert "op #0 SPACE_TO_BATCH_ND (dilated CONV_2D) pads" in text and "never sets" in text
    assert "PASS: bit-exact with %s" % validate.ORACLE_FUSED in text
    assert validate.tflm_undefined(tflite.load(static_dilated(
        tmp_path, "dilated_conv_valid_int8.tflite"))) == []  # VALID: nothing padded is read


def test_dynamic_batch_dilated_conv_as_the_converter_writes_it(cpython_board):
    """The converter stores the batch-space tensors of a dynamic-batch model with batch 1,
    which TFLite Micro does not resize: validate says so and compares with the fused conv."""
    rep = validate.validate(ROOT / "tests" / "fixtures" / "dilated_conv_valid_int8.tflite",
                            cpython_board)
    text = validate.format_text(rep)
    assert rep["bit_exact"] and rep["oracle"] == validate.ORACLE_FUSED, text
    assert "with batch 1, not 4" in text


# --- inputs (no board needed) ---------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_graph():
    return tflite.load(DIGITS_INT8)


def test_inputs_from_npz_key_x_single_sample_and_batch(tmp_path, digits_graph):
    x = np.arange(3 * 64).reshape(3, 1, 8, 8).astype(np.int8)
    np.savez(tmp_path / "batch.npz", x=x)
    np.savez(tmp_path / "one.npz", x=x[0, 0])  # (8, 8) for a (1, 8, 8) input
    batch = validate.load_inputs(tmp_path / "batch.npz", digits_graph)
    assert len(batch) == 3 and all(s[0].shape == (1, 8, 8) for s in batch)
    assert np.array_equal(batch[2][0], x[2])
    one = validate.load_inputs(tmp_path / "one.npz", digits_graph)
    assert len(one) == 1 and np.array_equal(one[0][0], x[0])


def test_float_inputs_are_quantized_for_an_int8_input(digits_graph):
    t = digits_graph.tensors[digits_graph.inputs[0]]
    q = np.array([-128, -1, 0, 5, 127] + [0] * 59, np.int8).reshape(1, 8, 8)
    x = ((q.astype(np.float32) - t.zero_point) * t.scale)
    got = validate.load_inputs(x, digits_graph)[0][0]
    assert got.dtype == np.int8 and np.array_equal(got, q)


def test_inputs_by_tensor_name_and_bad_files(tmp_path, digits_graph):
    name = digits_graph.tensors[digits_graph.inputs[0]].name
    np.savez(tmp_path / "named.npz", **{name: np.zeros((2, 1, 8, 8), np.int8), "y": np.zeros(2)})
    assert len(validate.load_inputs(tmp_path / "named.npz", digits_graph)) == 2
    np.savez(tmp_path / "wrong.npz", a=np.zeros((2, 64)), b=np.zeros(2))
    with pytest.raises(NpuError, match="name the input's samples 'x'"):
        validate.load_inputs(tmp_path / "wrong.npz", digits_graph)
    np.savez(tmp_path / "shape.npz", x=np.zeros((2, 7), np.int8))
    with pytest.raises(NpuError, match="has shape"):
        validate.load_inputs(tmp_path / "shape.npz", digits_graph)
    with pytest.raises(NpuError, match="cannot read inputs"):
        validate.load_inputs(tmp_path / "missing.npz", digits_graph)


def test_float_model_is_refused_before_touching_a_board():
    with pytest.raises(ModelError, match="float model"):
        validate.validate(ZOO / "digits_mlp" / "float.tflite", board=None)


def test_truncate_keeps_the_prefix(digits_graph):
    model = DIGITS_INT8.read_bytes()
    op = digits_graph.ops[1]
    cut = tflite.parse(validate.truncate(model, 1, op.outputs[0]))
    assert [o.kind for o in cut.ops] == ["RESHAPE", "FULLY_CONNECTED"]
    assert cut.outputs == [op.outputs[0]] and cut.inputs == digits_graph.inputs


def _crash(conn, model_bytes, samples, oracle_bytes):
    """A reference runtime dying in native code: a real SIGSEGV in the child."""
    import ctypes
    ctypes.string_at(0)


def test_a_reference_runtime_crash_is_a_clear_error():
    """TFLite Micro crashed inside `npu validate` on a model the compiler accepts (rc -11, no
    message): the references run in a child process, and its death is one clear error."""
    with pytest.raises(NpuError, match="crashed running m.tflite .signal 11, SIGSEGV."):
        validate.reference_outputs(b"", [], "m.tflite", target=_crash)


def test_the_references_in_the_child_give_what_they_give_in_process():
    from npu_sdk import reference
    model = DIGITS_INT8.read_bytes()
    x = [np.zeros((1, 8, 8), np.int8)]
    want, lite, lite_error = validate.reference_outputs(model, [x], "digits")
    np.testing.assert_array_equal(want[0][0], reference.run_tflm(model, x)[0])
    assert lite is not None and lite_error is None
