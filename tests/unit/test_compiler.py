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
