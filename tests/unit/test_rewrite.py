"""npu_sdk.rewrite: each rewrite alone on small hand-made graphs, then the converter-made
fixtures (tools/make_fixtures.py) through simplify, checked for identical outputs.

Semantics are checked by running the original .tflite and the rewritten graph (written
back with tflite_writer) on LiteRT's builtin kernels with the same seeded int8 inputs:
outputs must be bit-identical. The compiled rewritten graphs are also run on the
emulator's C kernels (npufw.interp) against the TFLite Micro oracle.
"""
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from npu_sdk import compiler, reference, rewrite, tflite, tflite_writer
from npu_sdk.errors import ModelError, UnsupportedOpError
from npu_sdk.graph import Graph, Op, Tensor

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
I8, I32, F32 = np.dtype(np.int8), np.dtype(np.int32), np.dtype(np.float32)


def _tensor(name, shape, dtype, q=None, data=None):
    scales = zps = None
    if q is not None:
        scales, zps = np.array([q[0]], np.float32), np.array([q[1]], np.int64)
    if data is not None:
        data = np.asarray(data, dtype=dtype).reshape(shape)
    return Tensor(name, tuple(shape), dtype, scales, zps, 0, data)


def _load(name):
    data = (FIXTURES / name).read_bytes()
    return data, tflite.parse(data, source=name)


def _inputs(graph, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, size=graph.tensors[i].shape, dtype=np.int8)
            for i in graph.inputs]


def _litert(model_bytes, graph, inputs):
    """Outputs on LiteRT's builtin (reference) kernels, no XNNPACK delegate."""
    got = next(reference.litert_all_tensors(model_bytes, [inputs], graph.outputs))
    return [got[i] for i in graph.outputs]


def _assert_same_outputs(model_bytes, graph, new_graph, seeds=range(3)):
    new_bytes = tflite_writer.write(new_graph)
    for seed in seeds:
        x = _inputs(graph, seed)
        for a, b in zip(_litert(model_bytes, graph, x), _litert(new_bytes, new_graph, x)):
            assert a.shape == b.shape and np.array_equal(a, b), "seed %d: %d outputs differ" % (
                seed, int(np.sum(a != b)))


# --- fold_constants ---------------------------------------------------------------------

def _shape_graph(slice_options=None, begin=0, end=1, stride=1, slice_shape=()):
    """x[1,4,2] -> SHAPE -> STRIDED_SLICE -> PACK(-1) -> RESHAPE(x) -> y[1,8]."""
    q = (0.1, 3)
    tensors = [_tensor("x", (1, 4, 2), I8, q), _tensor("shape", (3,), I32),
               _tensor("begin", (1,), I32, data=[begin]), _tensor("end", (1,), I32, data=[end]),
               _tensor("stride", (1,), I32, data=[stride]), _tensor("batch", slice_shape, I32),
               _tensor("minus1", (), I32, data=-1), _tensor("new_shape", (2,), I32),
               _tensor("y", (1, 8), I8, q)]
    ops = [Op("SHAPE", [0], [1], {}, 0),
           Op("STRIDED_SLICE", [1, 2, 3, 4], [5], dict(slice_options or {}), 1),
           Op("PACK", [5, 6], [7], {"axis": 0}, 2),
           Op("RESHAPE", [0, 7], [8], {}, 3)]
    return Graph(tensors, ops, [0], [8], "shapes")


def test_fold_constants_folds_flatten_shape_arithmetic():
    g = _shape_graph()
    out = rewrite.simplify(g)
    assert [op.kind for op in out.ops] == ["RESHAPE"]
    shape_input = out.tensors[out.ops[0].inputs[1]]
    assert shape_input.is_const and shape_input.data.tolist() == [1, -1]
    assert [op.kind for op in g.ops] == ["SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE"]  # untouched


def test_fold_constants_returns_the_same_graph_when_nothing_folds():
    g = _shape_graph()
    g = dataclasses.replace(g, ops=g.ops[1:])  # no SHAPE: the slice input is unknown
    assert rewrite.fold_constants(g) is g


def test_fold_constants_concatenation_and_gather():
    tensors = [_tensor("a", (2,), I32, data=[3, 5]), _tensor("b", (1,), I32, data=[7]),
               _tensor("ab", (3,), I32), _tensor("idx", (2,), I32, data=[2, 0]),
               _tensor("picked", (2,), I32)]
    g = Graph(tensors, [Op("CONCATENATION", [0, 1], [2], {"axis": 0, "activation": "NONE"}),
                        Op("GATHER", [2, 3], [4], {"axis": 0})], [], [4])
    out = rewrite.simplify(g)
    assert out.ops == [] and out.tensors[out.outputs[0]].data.tolist() == [7, 3]


def test_fold_constants_leaves_quantized_and_float_math_alone():
    q = (0.5, 0)
    tensors = [_tensor("a", (2,), I8, q, data=[1, 2]), _tensor("b", (2,), I8, q, data=[3, 4]),
               _tensor("c", (2,), I8, q)]
    g = Graph(tensors, [Op("ADD", [0, 1], [2], {"activation": "NONE"})], [], [2])
    assert rewrite.fold_constants(g) is g


@pytest.mark.parametrize("options, want", [
    ({}, None),  # masks unknown: [6, 8] (no mask) and [5, 7] (begin mask) both fit: no fold
    ({"begin_mask": 0, "end_mask": 0, "shrink_axis_mask": 0}, [6, 8]),
    ({"begin_mask": 1, "end_mask": 0, "shrink_axis_mask": 0}, [5, 7]),
])
def test_strided_slice_masks(options, want):
    tensors = [_tensor("x", (4,), I32, data=[5, 6, 7, 8]), _tensor("b", (1,), I32, data=[1]),
               _tensor("e", (1,), I32, data=[4]), _tensor("s", (1,), I32, data=[2]),
               _tensor("y", (2,), I32)]
    g = Graph(tensors, [Op("STRIDED_SLICE", [0, 1, 2, 3], [4], options)], [], [4])
    out = rewrite.fold_constants(g)
    if want is None:
        assert out is g
    else:
        assert out.ops == [] and out.tensors[4].data.tolist() == want


def test_strided_slice_shrink_is_read_from_the_output_shape_when_masks_are_unknown():
    out = rewrite.fold_constants(rewrite.fold_constants(_shape_graph(begin=0, end=1)))
    assert out.tensors[5].data.shape == () and int(out.tensors[5].data) == 1


# --- prune ------------------------------------------------------------------------------

def test_prune_renumbers_tensors_inputs_and_outputs():
    q = (0.1, 0)
    tensors = [_tensor("unused", (3,), I32, data=[1, 2, 3]), _tensor("x", (1, 4), I8, q),
               _tensor("dead_out", (1, 4), I8, q), _tensor("y", (4,), I8, q),
               _tensor("shape", (1,), I32, data=[4])]
    g = Graph(tensors, [Op("RESHAPE", [1, 4], [2]), Op("RESHAPE", [1, 4], [3])], [1], [3])
    out = rewrite.prune(g)
    assert [t.name for t in out.tensors] == ["x", "y", "shape"]
    assert out.inputs == [0] and out.outputs == [1]
    assert [(op.inputs, op.outputs) for op in out.ops] == [([0, 2], [1])]
    assert rewrite.prune(out) is out


# --- fold_dilated_conv --------------------------------------------------------------------

@pytest.mark.parametrize("name, kind, padding, dilation", [
    ("dilated_conv_same_int8.tflite", "CONV_2D", "SAME", (2, 2)),
    ("dilated_conv_valid_int8.tflite", "CONV_2D", "VALID", (2, 2)),
    ("dilated_depthwise_int8.tflite", "DEPTHWISE_CONV_2D", "SAME", (2, 3)),
])
def test_fold_dilated_conv(name, kind, padding, dilation):
    data, g = _load(name)
    assert [op.kind for op in g.ops] == ["SPACE_TO_BATCH_ND", kind, "BATCH_TO_SPACE_ND"]
    out = rewrite.simplify(g)
    assert [op.kind for op in out.ops] == [kind]
    o = out.ops[0].options
    assert (o["padding"], o["dilation_h"], o["dilation_w"]) == (padding, *dilation)
    assert out.ops[0].inputs[0] == out.inputs[0] and out.ops[0].outputs == out.outputs
    assert rewrite.diagnose(out) == []
    _assert_same_outputs(data, g, out)


def _with_const(graph, tensor, value):
    tensors = list(graph.tensors)
    tensors[tensor] = dataclasses.replace(tensors[tensor], data=np.asarray(value, np.int32))
    return dataclasses.replace(graph, tensors=tensors)


def test_fold_dilated_conv_refuses_padding_that_is_neither_same_nor_valid():
    _, g = _load("dilated_conv_same_int8.tflite")
    crops = g.ops[2].inputs[2]
    bad = _with_const(g, crops, [[1, 0], [0, 1]])  # top padding 2 - 1: shifted window
    assert rewrite.fold_dilated_conv(bad) is bad
    [(index, kind, reason)] = rewrite.diagnose(bad)
    assert (index, kind) == (0, "SPACE_TO_BATCH_ND")
    assert "along height" in reason and "neither SAME nor VALID" in reason


def test_fold_dilated_conv_refuses_a_strided_conv_in_batch_space():
    _, g = _load("dilated_conv_valid_int8.tflite")
    conv = dataclasses.replace(g.ops[1], options=dict(g.ops[1].options, stride_h=2))
    bad = dataclasses.replace(g, ops=[g.ops[0], conv, g.ops[2]])
    assert rewrite.fold_dilated_conv(bad) is bad
    assert "strides or dilations" in rewrite.diagnose(bad)[0][2]


def test_fold_dilated_conv_refuses_when_the_batch_space_tensor_has_other_readers():
    _, g = _load("dilated_conv_valid_int8.tflite")
    bad = dataclasses.replace(g, outputs=g.outputs + [g.ops[0].outputs[0]])
    assert rewrite.fold_dilated_conv(bad) is bad
    assert "graph output" in rewrite.diagnose(bad)[0][2]


# --- pass-through ops -------------------------------------------------------------------

def _reshape_chain():
    """x[1,8] -RESHAPE-> [1,8] -RESHAPE-> [2,4] -RESHAPE-> [4,2] -ADD(self)-> y."""
    q = (0.05, -3)
    tensors = [_tensor("x", (1, 8), I8, q), _tensor("s18", (2,), I32, data=[1, 8]),
               _tensor("a", (1, 8), I8, q), _tensor("s24", (2,), I32, data=[2, 4]),
               _tensor("b", (2, 4), I8, q), _tensor("s42", (2,), I32, data=[4, 2]),
               _tensor("c", (4, 2), I8, q), _tensor("y", (4, 2), I8, (0.1, -3))]
    ops = [Op("RESHAPE", [0, 1], [2], {}, 0), Op("RESHAPE", [2, 3], [4], {}, 1),
           Op("RESHAPE", [4, 5], [6], {}, 2), Op("ADD", [6, 6], [7], {"activation": "NONE"}, 3)]
    return Graph(tensors, ops, [0], [7], "reshapes")


def test_drop_identity_reshapes():
    g = _reshape_chain()
    out = rewrite.drop_identity_reshapes(g)
    assert [op.index for op in out.ops] == [1, 2, 3] and out.ops[0].inputs[0] == 0


def test_merge_reshape_chains():
    g = _reshape_chain()
    out = rewrite.merge_reshape_chains(g)
    assert [op.index for op in out.ops] == [1, 2, 3]
    assert out.ops[0].inputs == [0, 3]  # the outer reshape reads x with its own shape


def test_reshape_rewrites_keep_semantics():
    g = _reshape_chain()
    out = rewrite.simplify(g)
    assert [op.kind for op in out.ops] == ["RESHAPE", "ADD"]
    assert out.tensors[out.ops[0].inputs[1]].data.tolist() == [4, 2]
    _assert_same_outputs(tflite_writer.write(g), g, out)


def _requantize_graph(scale_back):
    """x int8 -DEQUANTIZE-> float -QUANTIZE-> q int8 (scale_back) -ADD(self)-> y."""
    tensors = [_tensor("x", (1, 6), I8, (0.05, 4)), _tensor("f", (1, 6), F32),
               _tensor("q", (1, 6), I8, (scale_back, 4)), _tensor("y", (1, 6), I8, (0.1, 4))]
    ops = [Op("DEQUANTIZE", [0], [1], {}, 0), Op("QUANTIZE", [1], [2], {}, 1),
           Op("ADD", [2, 2], [3], {"activation": "NONE"}, 2)]
    return Graph(tensors, ops, [0], [3], "qdq")


def test_cancel_requantize_pairs():
    g = _requantize_graph(0.05)
    out = rewrite.simplify(g)
    assert [op.kind for op in out.ops] == ["ADD"] and out.ops[0].inputs == [0, 0]
    _assert_same_outputs(tflite_writer.write(g), g, out)


def test_requantize_pairs_that_change_the_scale_stay():
    g = _requantize_graph(0.04)
    assert rewrite.cancel_requantize_pairs(g) is g


# --- simplify on converter output -------------------------------------------------------

def test_fixtures_are_small():
    assert sum(p.stat().st_size for p in FIXTURES.glob("*.tflite")) < 50_000


def test_flatten_with_dynamic_batch_simplifies():
    data, g = _load("flatten_int8.tflite")
    assert {"SHAPE", "STRIDED_SLICE", "PACK"} <= {op.kind for op in g.ops}
    out = rewrite.simplify(g)
    assert [op.kind for op in out.ops] == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    assert out.tensors[out.ops[1].inputs[1]].data.tolist() == [1, 64]
    assert len(out.tensors) < len(g.tensors)
    _assert_same_outputs(data, g, out)


def test_simplify_refuses_rewrites_that_never_settle():
    def always_new(graph):
        return dataclasses.replace(graph)

    with pytest.raises(ModelError, match="fixed point"):
        rewrite.simplify(_shape_graph(), rewrites=(always_new,), max_rounds=5)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.tflite")))
def test_simplify_reaches_a_fixed_point(name):
    _, g = _load(name)
    out = rewrite.simplify(g)
    assert rewrite.simplify(out) is out


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.tflite")))
def test_converter_patterns_compile_after_simplify(name):
    """Without simplify the compiler refuses these models; after it, the compiled blob on
    the emulator's C kernels is bit-exact with the TFLM oracle on the simplified model
    (which LiteRT shows equal to the original above). TFLM is not run on the originals:
    tflite-micro 0.dev20261023 gets SPACE_TO_BATCH_ND -> CONV_2D -> BATCH_TO_SPACE_ND
    right only for batch-space batch 0, and LiteRT's builtin int8 conv rounds a few
    values differently from TFLM."""
    _kernels = pytest.importorskip("npu_emulator._kernels")
    from npufw import interp

    _, g = _load(name)
    with pytest.raises(UnsupportedOpError):
        compiler.check(g)
    simple = rewrite.simplify(g)
    model = interp.Model(compiler.compile_graph(simple).blob, _kernels)
    oracle = reference.tflm_interpreter(tflite_writer.write(simple))
    for seed in range(3):
        x = _inputs(g, seed)
        want = reference.run_tflm(tflite_writer.write(simple), x, oracle)[0]
        model.set_input(0, x[0].tobytes())
        model.invoke()
        got = np.frombuffer(bytes(model.output(0)), np.int8).reshape(want.shape)
        assert np.array_equal(got, want), "seed %d: %d outputs differ" % (
            seed, int(np.sum(got != want)))
