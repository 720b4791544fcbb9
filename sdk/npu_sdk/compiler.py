"""The compiler driver: Graph -> checked -> lowered -> planned -> packed blob.

Each stage is a function of the previous stage's value; only compile_file
touches the file system.
"""
from dataclasses import dataclass

import numpy as np

from . import blob, lower, plan, tflite
from .errors import ModelError, UnsupportedOpError

_BLOB_DTYPES = {np.dtype(np.int8): "int8", np.dtype(np.int32): "int32",
                np.dtype(np.float32): "float32", np.dtype(np.int16): "int16",
                np.dtype(np.uint8): "uint8"}
_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
INT8 = np.dtype(np.int8)
FLOAT32 = np.dtype(np.float32)


@dataclass
class Compiled:
    blob: bytes
    arena_size: int
    arena_lower_bound: int
    const_size: int
    n_ops: int


# --- supported-op constraints: each returns a list of reasons (empty = fine) -----------

def _dtype(graph, i):
    return np.dtype(graph.tensors[i].dtype)


def _check_fully_connected(graph, op):
    reasons = []
    x, w = op.inputs[0], op.inputs[1]
    bias = op.inputs[2] if len(op.inputs) > 2 else -1
    if _dtype(graph, x) != INT8 or _dtype(graph, op.outputs[0]) != INT8:
        reasons.append("input and output must be int8 (got %s -> %s)"
                       % (_dtype(graph, x), _dtype(graph, op.outputs[0])))
    wt = graph.tensors[w]
    if not wt.is_const or wt.dtype != INT8 or len(wt.shape) != 2:
        reasons.append("weights must be a constant int8 [out, in] matrix")
    elif wt.zero_points is not None and np.any(wt.zero_points != 0):
        reasons.append("weights must be symmetric (zero point 0)")
    if bias >= 0 and (not graph.tensors[bias].is_const or graph.tensors[bias].dtype != np.int32):
        reasons.append("bias must be a constant int32 vector")
    if op.options.get("activation", "NONE") not in _ACTIVATIONS:
        reasons.append("fused activation %s is not one of %s" % (op.options["activation"], _ACTIVATIONS))
    if op.options.get("weights_format", 0) != 0:
        reasons.append("shuffled weights format is not supported")
    return reasons


def _check_softmax(graph, op):
    out = graph.tensors[op.outputs[0]]
    if _dtype(graph, op.inputs[0]) != INT8 or out.dtype != INT8:
        return ["input and output must be int8"]
    if out.zero_point != -128 or abs(out.scale - 1 / 256) > 1e-9:
        return ["int8 output must have scale 1/256 and zero point -128 (got %g, %d)"
                % (out.scale, out.zero_point)]
    return []


def _check_reshape(graph, op):
    a, b = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    return [] if a.nbytes == b.nbytes and a.dtype == b.dtype else ["input and output sizes differ"]


def _check_quantize(graph, op):
    if _dtype(graph, op.inputs[0]) != FLOAT32 or _dtype(graph, op.outputs[0]) != INT8:
        return ["only float32 -> int8 is supported (got %s -> %s)"
                % (_dtype(graph, op.inputs[0]), _dtype(graph, op.outputs[0]))]
    return []


def _check_dequantize(graph, op):
    if _dtype(graph, op.inputs[0]) != INT8 or _dtype(graph, op.outputs[0]) != FLOAT32:
        return ["only int8 -> float32 is supported"]
    return []


CONSTRAINTS = {
    "FULLY_CONNECTED": _check_fully_connected,
    "SOFTMAX": _check_softmax,
    "RESHAPE": _check_reshape,
    "QUANTIZE": _check_quantize,
    "DEQUANTIZE": _check_dequantize,
}


def check(graph):
    """Raise UnsupportedOpError listing every op the compiler cannot take, with the reason."""
    problems = []
    for op in graph.ops:
        if op.kind not in CONSTRAINTS:
            problems.append((op.index, op.kind, "op not supported (supported: %s)"
                             % ", ".join(sorted(CONSTRAINTS))))
            continue
        shapes = " ".join(str(graph.tensors[i].shape) for i in op.inputs if i >= 0)
        for reason in CONSTRAINTS[op.kind](graph, op):
            problems.append((op.index, op.kind, "%s [inputs %s]" % (reason, shapes)))
    for i in graph.inputs + graph.outputs:
        if len(graph.tensors[i].shape) > blob.MAX_RANK:
            problems.append((-1, "io", "tensor %r has rank > %d" % (graph.tensors[i].name, blob.MAX_RANK)))
    if problems:
        raise UnsupportedOpError(problems, graph.name)
    return graph


# --- lowering: TFLite ops -> kernel calls with fixed-point parameters ----------------

class _Lowering:
    """Collects blob tensors, constants and op records for one graph."""

    def __init__(self, graph):
        self.graph = graph
        self.alias = {}  # tensor -> the tensor whose bytes it shares (RESHAPE)
        self.index = {}  # graph tensor -> blob tensor index
        self.records = []
        self.consts = []  # (blob tensor index, bytes)
        self.ops = []

    def root(self, t):
        while t in self.alias:
            t = self.alias[t]
        return t

    def tensor(self, t):
        if t < 0:
            return -1
        if t not in self.index:
            gt = self.graph.tensors[t]
            shape = list(gt.shape) or [1]
            self.index[t] = len(self.records)
            self.records.append(dict(
                dtype=_BLOB_DTYPES[np.dtype(gt.dtype)], location="const" if gt.is_const else "arena",
                ndim=len(shape), shape=shape + [1] * (blob.MAX_RANK - len(shape)),
                scale=gt.scale if gt.scales is not None else 0.0,
                zero_point=gt.zero_point if gt.zero_points is not None else 0,
                offset=0, size=gt.nbytes, graph_tensor=t))
            if gt.is_const:
                self.consts.append((self.index[t], np.ascontiguousarray(gt.data).tobytes()))
        return self.index[t]

    def const(self, array, dtype):
        array = np.ascontiguousarray(array, dtype=dtype)
        self.records.append(dict(dtype=_BLOB_DTYPES[np.dtype(dtype)], location="const", ndim=1,
                                 shape=[array.size, 1, 1, 1], scale=0.0, zero_point=0,
                                 offset=0, size=array.nbytes, graph_tensor=None))
        self.consts.append((len(self.records) - 1, array.tobytes()))
        return len(self.records) - 1

    def emit(self, kind, inputs, outputs, **params):
        self.ops.append(dict(opcode=blob.OPCODES[kind], inputs=inputs,
                             outputs=[self.tensor(t) for t in outputs],
                             params=[int(params[name]) for name in blob.PARAMS[kind]]))


def _lower_fully_connected(lw, op):
    g = lw.graph
    x, w, y = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    bias = op.inputs[2] if len(op.inputs) > 2 else -1
    out_depth, in_depth = w.shape
    p = lower.fully_connected_params(x.scale, x.zero_point, w.scales, y.scale, y.zero_point,
                                     op.options.get("activation", "NONE"), out_depth)
    inputs = [lw.tensor(op.inputs[0]), lw.tensor(op.inputs[1]), lw.tensor(bias),
              lw.const(p["mult"], np.int32), lw.const(p["shift"], np.int32)]
    lw.emit("FULLY_CONNECTED", inputs, op.outputs, batches=x.nbytes // in_depth,
            in_depth=in_depth, out_depth=out_depth, input_offset=p["input_offset"],
            output_offset=p["output_offset"], act_min=p["act_min"], act_max=p["act_max"])


def _lower_softmax(lw, op):
    x = lw.graph.tensors[op.inputs[0]]
    mult, shift, diff_min = lower.softmax_params(x.scale, op.options.get("beta", 1.0))
    depth = x.shape[-1]
    lw.emit("SOFTMAX", [lw.tensor(op.inputs[0])], op.outputs, rows=x.nbytes // depth, depth=depth,
            input_multiplier=mult, input_left_shift=shift, diff_min=diff_min)


def _lower_edge(kind):
    def lower_op(lw, op):
        count = int(np.prod(lw.graph.tensors[op.inputs[0]].shape, dtype=np.int64))
        lw.emit(kind, [lw.tensor(op.inputs[0])], op.outputs, count=count)
    return lower_op


LOWERINGS = {
    "FULLY_CONNECTED": _lower_fully_connected,
    "SOFTMAX": _lower_softmax,
    "QUANTIZE": _lower_edge("QUANTIZE"),
    "DEQUANTIZE": _lower_edge("DEQUANTIZE"),
}


def lower_graph(graph):
    lw = _Lowering(graph)
    for t in graph.inputs:
        lw.tensor(t)
    for op in graph.ops:
        if op.kind == "RESHAPE":  # an alias: the output shares the input's bytes
            lw.alias[op.outputs[0]] = op.inputs[0]
            lw.tensor(op.outputs[0])
        else:
            LOWERINGS[op.kind](lw, op)
    for t in graph.outputs:
        lw.tensor(t)
    return lw


def _place(lw):
    """Plan the arena and lay out the constant region; fills record offsets."""
    n_ops = len(lw.ops)
    life = {}  # root graph tensor -> [first, last]

    def touch(t, step):
        if t is None or lw.graph.tensors[t].is_const:
            return
        r = lw.root(t)
        span = life.setdefault(r, [step, step])
        span[0], span[1] = min(span[0], step), max(span[1], step)

    blob_to_graph = [r["graph_tensor"] for r in lw.records]
    for t in lw.graph.inputs:
        touch(t, 0)
    for step, op in enumerate(lw.ops):
        for i in list(op["inputs"]) + list(op["outputs"]):
            if i >= 0:
                touch(blob_to_graph[i], step)
    for t in lw.graph.outputs:
        touch(t, max(n_ops - 1, 0))
    roots = sorted(life)
    buffers = [(lw.graph.tensors[r].nbytes, life[r][0], life[r][1]) for r in roots]
    offsets, arena = plan.plan(buffers)
    offset_of = dict(zip(roots, offsets))
    for rec in lw.records:
        if rec["location"] == "arena":
            rec["offset"] = offset_of[lw.root(rec["graph_tensor"])]
    region = bytearray()
    for index, data in lw.consts:
        region += bytes(-len(region) % blob.ALIGN)
        lw.records[index]["offset"] = len(region)
        region += data
    return arena, plan.lower_bound(buffers), bytes(region)


def compile_graph(graph):
    """Compile a checked int8 Graph into blob bytes (deterministic for the same input)."""
    check(graph)
    lw = lower_graph(graph)
    arena, bound, constants = _place(lw)
    records = [{k: v for k, v in r.items() if k != "graph_tensor"} for r in lw.records]
    data = blob.pack(arena, records, [lw.index[t] for t in graph.inputs],
                     [lw.index[t] for t in graph.outputs], lw.ops, constants)
    return Compiled(data, arena, bound, len(constants), len(lw.ops))


def compile_file(path):
    graph = tflite.load(path)
    if any(np.dtype(t.dtype) == FLOAT32 and t.is_const for t in graph.tensors):
        raise ModelError("%s is a float model; this SDK version compiles int8 models only. "
                         "Quantize it with the TFLite converter (full-integer PTQ) first"
                         % path)
    return compile_graph(graph)
