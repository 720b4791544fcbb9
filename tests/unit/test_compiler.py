"""Reading .tflite files and the supported-op checks."""
import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from npu_sdk import compiler, tflite
from npu_sdk.errors import ModelError, UnsupportedOpError
from tests.conftest import DIGITS_INT8, ZOO


def _rewrite(path, edit):
    """A copy of a .tflite model changed by edit(ModelT)."""
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    edit(model)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_reads_the_zoo_model():
    g = tflite.load(DIGITS_INT8)
    assert [op.kind for op in g.ops] == ["RESHAPE"] + ["FULLY_CONNECTED"] * 3 + ["SOFTMAX"]
    assert g.tensors[g.inputs[0]].shape == (1, 8, 8)
    assert g.ops[1].options["activation"] == "RELU"


def test_every_unsupported_op_is_named_with_its_index():
    def edit(model):
        for code in model.operatorCodes:  # FULLY_CONNECTED -> TANH, SOFTMAX -> ADD
            for old, new in ((schema.BuiltinOperator.FULLY_CONNECTED, schema.BuiltinOperator.TANH),
                             (schema.BuiltinOperator.SOFTMAX, schema.BuiltinOperator.ADD)):
                if code.builtinCode == old:
                    code.builtinCode = code.deprecatedBuiltinCode = new
    graph = tflite.parse(_rewrite(DIGITS_INT8, edit), source="edited.tflite")
    with pytest.raises(UnsupportedOpError) as info:
        compiler.compile_graph(graph)
    assert [(i, name) for i, name, _ in info.value.problems] == [
        (1, "TANH"), (2, "TANH"), (3, "TANH"), (4, "ADD")]
    assert "op #4 ADD" in str(info.value) and "edited" in str(info.value)


def test_constraint_reasons_are_specific():
    def edit(model):  # make the softmax output's quantization wrong
        sg = model.subgraphs[0]
        sg.tensors[sg.outputs[0]].quantization.zeroPoint = [0]
    graph = tflite.parse(_rewrite(DIGITS_INT8, edit))
    with pytest.raises(UnsupportedOpError, match="scale 1/256 and zero point -128"):
        compiler.compile_graph(graph)


def test_float_model_is_refused_with_advice():
    with pytest.raises(ModelError, match="float model"):
        compiler.compile_file(ZOO / "digits_mlp" / "float.tflite")


@pytest.mark.parametrize("data, message", [
    (b"", "x.tflite is not a TFLite model"),
    (b"\x00" * 4 + b"TFL3" + b"\xff" * 40, "x.tflite has no subgraph"),
    (DIGITS_INT8.read_bytes()[:300], "x.tflite is a damaged .tflite|x.tflite is inconsistent"),
    (DIGITS_INT8.read_bytes()[:2000], "x.tflite is a damaged .tflite|x.tflite is inconsistent"),
])
def test_garbage_is_a_model_error(data, message):
    with pytest.raises(ModelError, match=message):
        tflite.parse(data, source="x.tflite")


def test_reshape_is_an_alias():
    c = compiler.compile_file(DIGITS_INT8)
    assert c.n_ops == 4  # the RESHAPE costs nothing on the board
    assert c.arena_size == c.arena_lower_bound


# --- CONV_2D, DEPTHWISE_CONV_2D, pools, ADD, MUL constraints ---------------------------

def _problems(model_bytes):
    with pytest.raises(UnsupportedOpError) as info:
        compiler.compile_graph(tflite.parse(model_bytes, source="m.tflite"))
    return [(i, kind, reason) for i, kind, reason in info.value.problems]


def test_new_ops_compile_to_their_opcodes():
    from npu_sdk import blob
    from tools import tflite_build as tb
    w = np.ones((2, 3, 3, 3), np.int8)
    models = {
        "CONV_2D": tb.conv2d_model((1, 5, 5, 3), (0.05, 1), w, [0.01], None, (0.3, 2)),
        "DEPTHWISE_CONV_2D": tb.conv2d_model((1, 5, 5, 3), (0.05, 1), np.ones((1, 3, 3, 6), np.int8),
                                             [0.01], np.zeros(6, np.int32), (0.3, 2),
                                             depthwise=True),
        "MAX_POOL_2D": tb.pool2d_model("MAX_POOL_2D", (1, 4, 4, 2), (0.1, 0), (2, 2), (2, 2)),
        "ADD": tb.elementwise_model("ADD", (1, 2, 2, 3), (0.1, 0), (3,), (0.2, 1), (0.3, 0)),
        "MUL": tb.elementwise_model("MUL", (4,), (0.1, 0), (4,), (0.2, 1), (0.05, 0)),
    }
    for kind, model in models.items():
        data = compiler.compile_graph(tflite.parse(model)).blob
        assert [op.opcode for op in blob.unpack(data).ops] == [blob.OPCODES[kind]]


def test_grouped_convolution_is_refused():
    from tools import tflite_build as tb
    model = tb.conv2d_model((1, 5, 5, 4), (0.05, 1), np.ones((2, 3, 3, 4), np.int8), [0.01],
                            None, (0.3, 2))
    def edit(m):  # weights take 2 of the input's 4 channels: a grouped convolution
        t = m.subgraphs[0].tensors[1]
        t.shape = np.array([4, 3, 3, 2], np.int32)
    m = schema.ModelT.InitFromPackedBuf(model, 0)
    edit(m)
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    (problem,) = _problems(bytes(b.Output()))
    assert problem[:2] == (0, "CONV_2D") and "grouped convolution is not supported" in problem[2]


def test_pool_with_requantization_is_refused():
    from tools import tflite_build as tb
    model = tb.pool2d_model("AVERAGE_POOL_2D", (1, 4, 4, 2), (0.1, 0), (2, 2), (2, 2))
    m = schema.ModelT.InitFromPackedBuf(model, 0)
    m.subgraphs[0].tensors[1].quantization.scale = [0.2]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    (problem,) = _problems(bytes(b.Output()))
    assert "share scale and zero point" in problem[2]


def test_add_with_a_tiny_output_scale_is_refused():
    from tools import tflite_build as tb
    model = tb.elementwise_model("ADD", (4,), (0.5, 0), (4,), (0.5, 0), (1e-8, 0))
    (problem,) = _problems(model)
    assert problem[1] == "ADD" and "must be in [0, 1)" in problem[2]


def test_interpreter_refuses_a_pooling_window_in_the_padding():
    from npufw import blobfmt, interp
    from npu_sdk import blob
    from npu_emulator import _kernels
    from tools import tflite_build as tb
    data = compiler.compile_graph(tflite.parse(
        tb.pool2d_model("AVERAGE_POOL_2D", (1, 4, 4, 2), (0.1, 0), (2, 2), (2, 2)))).blob
    body = blob.unpack(data)
    ops = [dict(opcode=o.opcode, inputs=list(o.inputs), outputs=list(o.outputs),
                params=list(o.params)) for o in body.ops]
    ops[0]["params"][10] = 2  # pad_h == k_h: the first row of windows sees only padding
    bad = blob.pack(body.header.value.arena_size, [dict(t) for t in body.tensors],
                    list(body.inputs), list(body.outputs), ops, body.constants)
    with pytest.raises(blobfmt.BlobError, match="pooling window misses the input"):
        interp.Model(bad, _kernels)


def test_pointwise_mean_pad_concat_compile_to_their_opcodes():
    from npu_sdk import blob
    from tools import tflite_build as tb
    lut, copy = blob.OPCODES["LUT"], blob.OPCODES["COPY"]
    models = {
        "RELU": (tb.unary_model("RELU", [1, 4], (0.1, 0), (0.05, -128)), [lut]),
        "TANH": (tb.unary_model("TANH", [1, 4], (0.1, 0), (1 / 128, 0)), [lut]),
        "QUANTIZE": (tb.unary_model("QUANTIZE", [1, 4], (0.1, 0), (0.05, 3)), [lut]),
        "MEAN": (tb.mean_model((1, 3, 3, 2), (0.1, 0), (0.05, 0), keep_dims=False),
                 [blob.OPCODES["MEAN"]]),
        "PADV2": (tb.pad_model((2, 3), (0.1, 0), [[1, 0], [0, 2]], constant=5), [copy]),
        "CONCATENATION": (tb.concatenation_model([(1, 2), (1, 3), (1, 1)], 1, (0.1, 0)),
                          [copy] * 3),
        "TRANSPOSE": (tb.transpose_model((1, 3, 4, 5), (0.1, 0), (0, 2, 3, 1)), [copy]),
        # only size-1 dimensions move: the bytes are in order already, an alias
        "TRANSPOSE size-1": (tb.transpose_model((1, 3, 1, 5), (0.1, 0), (2, 1, 0, 3)), []),
    }
    for kind, (model, opcodes) in models.items():
        data = compiler.compile_graph(tflite.parse(model)).blob
        assert [op.opcode for op in blob.unpack(data).ops] == opcodes, kind


@pytest.mark.parametrize("model,match", [
    (lambda tb: tb.unary_model("TANH", [4], (0.1, 0), (1 / 256, -128)),
     "scale 1/128 and zero point 0"),
    (lambda tb: tb.unary_model("RELU6", [4], (0.1, 0), (0.2, 0)), "share scale and zero point"),
    (lambda tb: tb.unary_model("LOGISTIC", [4], (1e-9, 0), (1 / 256, -128)),
     "outside the range TFLM"),
    (lambda tb: tb.concatenation_model([(1, 2), (1, 3)], 1, (0.1, 0), [(0.1, 0), (0.2, 0)]),
     "share scale and zero point"),
    (lambda tb: tb.mean_model((1, 3, 3, 2), (0.1, 0), (0.05, 0), axes=(3,)),
     "axes 1 and 2"),
    (lambda tb: tb.transpose_model((2, 3, 4), (0.1, 0), (0, 0, 1)), "permutation of 0..rank-1"),
    (lambda tb: tb.transpose_model((2, 3, 4), (0.1, 0), (0, 1, 3)), "permutation of 0..rank-1"),
    (lambda tb: tb.transpose_model((2, 3), (0.1, 0), (1, 0), (0.2, 1)),
     "share scale and zero point"),
    (lambda tb: tb.transpose_model((2, 3, 4, 5), (0.1, 0), (3, 1, 0, 2), dtype=np.int16),
     "int16 TRANSPOSE moving all 4 dimensions"),
    (lambda tb: tb.fully_connected_model(4, 2, 1, (0.01, 0), np.ones((2, 4)), [0.1], [1, 2],
                                         (0.05, 3), int16=True), "zero point 0 (16x8)"),
    (lambda tb: tb.fully_connected_model(4, 2, 1, (0.01, 0), np.ones((2, 4)), [0.1],
                                         [1 << 50, 2], (0.05, 0), int16=True), "2^46"),
    (lambda tb: tb.fully_connected_model(4, 2, 1, (1.0, 0), np.ones((2, 4)), [1.0], None,
                                         (1e-3, 0), int16=True), "shifts up to 7"),
])
def test_new_op_constraints_name_the_reason(model, match):
    from tools import tflite_build as tb
    (problem,) = _problems(model(tb))
    assert match in problem[2]


def test_interpreter_refuses_a_copy_past_its_output():
    from npufw import blobfmt, interp
    from npu_sdk import blob
    from npu_emulator import _kernels
    from tools import tflite_build as tb
    data = compiler.compile_graph(tflite.parse(
        tb.pad_model((2, 3), (0.1, 0), [[1, 0], [0, 2]]))).blob
    body = blob.unpack(data)
    ops = [dict(opcode=o.opcode, inputs=list(o.inputs), outputs=list(o.outputs),
                params=list(o.params)) for o in body.ops]
    ops[0]["params"][12] += 3  # out_offset: the last row lands past the output
    bad = blob.pack(body.header.value.arena_size, [dict(t) for t in body.tensors],
                    list(body.inputs), list(body.outputs), ops, body.constants)
    with pytest.raises(blobfmt.BlobError, match="copy writes past its output"):
        interp.Model(bad, _kernels)


# --- graphs a board would refuse: shapes, empty graphs, tensors nothing writes ---------

def _inconsistent(model_bytes):
    """The one-line ModelError compiling `model_bytes` (as m.tflite) raises."""
    with pytest.raises(ModelError) as info:
        compiler.compile_graph(tflite.parse(model_bytes, source="m.tflite"))
    assert not isinstance(info.value, UnsupportedOpError) and "\n" not in str(info.value)
    return str(info.value)


def _edited(model_bytes, edit):
    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    edit(model)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_softmax_whose_output_shape_is_not_its_input_is_refused():
    """A SOFTMAX from 1x3x7 to 1x255x7 compiled, then failed on the board blaming the store."""
    from tools import tflite_build as tb

    def edit(model):
        model.subgraphs[0].tensors[model.subgraphs[0].outputs[0]].shape = [1, 255, 7]
    message = _inconsistent(_edited(tb.softmax_model((1, 3, 7), (0.1, 0)), edit))
    assert message == ("m: op #0 SOFTMAX: output tensor 'output' has shape (1, 255, 7), but its "
                       "input 'input' (1, 3, 7) implies (1, 3, 7): the model is inconsistent; "
                       "export it again")


@pytest.fixture(scope="module")
def one_op_models():
    """A model of every op the compiler lowers: the conformance cases, SOFTMAX, DEQUANTIZE."""
    from tests.conformance import op_cases
    from tools import tflite_build as tb
    return ([c.model for c in op_cases.all_cases()]
            + [tb.softmax_model((2, 5), (0.1, 0)), tb.dequantize_model((2, 3), (0.1, 0))])


def _writer(model_bytes):
    """(the op writing the graph's output, its output tensor's name) of a model."""
    graph = tflite.parse(model_bytes)
    out = graph.outputs[0]
    op = next(o for o in graph.ops if out in o.outputs)
    return op, graph.tensors[out].name


def test_every_ops_output_shape_is_checked_against_what_its_inputs_imply(one_op_models):
    """The class of the SOFTMAX case: for every op the registry lowers, an output shape other
    than the one its inputs and options imply (a dimension more, or the window arithmetic
    of another padding or stride) is refused in one line naming the op and the tensor."""
    from npu_sdk import lower, ops
    assert set(compiler.SHAPES) == {n for n, o in ops.OPS.items() if o.lowering
                                    and o.lowering != "reshape"}

    def grow(model):  # the output's last dimension one larger
        t = model.subgraphs[0].tensors[model.subgraphs[0].outputs[0]]
        t.shape = list(t.shape[:-1]) + [t.shape[-1] + 1]

    def window_edits(model):
        """Edits of a windowed op's options that change its output size (not its tensors)."""
        op = model.subgraphs[0].operators[0]
        o = op.builtinOptions
        if not hasattr(o, "strideH"):
            return []
        x = model.subgraphs[0].tensors[op.inputs[0]].shape
        k_h = getattr(o, "filterHeight", None) or \
            model.subgraphs[0].tensors[op.inputs[1]].shape[1]
        dil = getattr(o, "dilationHFactor", 1) or 1
        edits, other = [], {0: "VALID", 1: "SAME"}[o.padding]  # schema: SAME 0, VALID 1

        def size(padding, stride):
            return lower.conv_output_size(padding, x[1], k_h, stride, dil)
        here = {0: "SAME", 1: "VALID"}[o.padding]
        if size(other, o.strideH) != size(here, o.strideH):
            edits.append(lambda m: setattr(m.subgraphs[0].operators[0].builtinOptions,
                                           "padding", 1 - o.padding))
        if size(here, o.strideH + 1) != size(here, o.strideH):
            edits.append(lambda m: setattr(m.subgraphs[0].operators[0].builtinOptions,
                                           "strideH", o.strideH + 1))
        return edits

    refused = set()
    for model_bytes in one_op_models:
        op, name = _writer(model_bytes)
        model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
        for edit in [grow] + window_edits(model):
            message = _inconsistent(_edited(model_bytes, edit))
            assert message.startswith("m: op #%d %s: output tensor %r has shape "
                                      % (op.index, op.kind, name)), message
            assert "implies" in message or "imply" in message
            refused.add((op.kind, edit.__name__))
    kinds = {k for k, _ in refused}
    assert kinds == set(compiler.SHAPES)
    assert {k for k, e in refused if e == "<lambda>"} == {
        "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"}


def test_a_graph_with_no_op_is_refused():
    from tools import tflite_build as tb

    def edit(model):
        sg = model.subgraphs[0]
        sg.operators = []
        sg.outputs = sg.inputs
    model = schema.ModelT.InitFromPackedBuf(tb.softmax_model((1, 4), (0.1, 0)), 0)
    edit(model)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    with pytest.raises(ModelError, match="no op a board runs"):
        compiler.compile_graph(tflite.parse(bytes(b.Output()), source="m.tflite"))


def test_an_op_reading_a_tensor_nothing_writes_is_refused():
    from tools import tflite_build as tb

    def edit(model):  # the softmax reads its own output: nothing writes it before
        op = model.subgraphs[0].operators[0]
        op.inputs = list(op.outputs)
    model = schema.ModelT.InitFromPackedBuf(tb.softmax_model((1, 4), (0.1, 0)), 0)
    edit(model)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    problems = _problems(bytes(b.Output()))
    assert any("which no earlier op writes" in reason for _, _, reason in problems), problems
