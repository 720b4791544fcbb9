"""Graph rewrites that digest what converters emit: Graph -> Graph, run to a fixed point.

Each rewrite is a small pure function that returns a new Graph, or the very
same Graph object when it found nothing to do; `simplify` applies them all
until none changes anything, then drops dead ops and tensors. Inputs are never
mutated: new Ops and Tensors are built where something changes, the rest are
shared.

  fold_constants      shape arithmetic (SHAPE, STRIDED_SLICE, PACK, CONCATENATION,
                      GATHER, ...) whose inputs are all known -> a constant; this is
                      what Keras' Flatten leaves in front of RESHAPE with a dynamic batch.
  fold_dilated_conv   SPACE_TO_BATCH_ND -> CONV_2D / DEPTHWISE_CONV_2D (VALID) ->
                      BATCH_TO_SPACE_ND, TF's lowering of a dilated convolution ->
                      one convolution with dilation factors and SAME or VALID padding.
  fold_transpose_into_fully_connected
                      TRANSPOSE (-> RESHAPE) -> FULLY_CONNECTED, PyTorch's flatten of an
                      NCHW tensor -> FULLY_CONNECTED with its weight columns permuted.
  drop_identity_reshapes, merge_reshape_chains, cancel_requantize_pairs
                      pass-through ops that change nothing.
  prune               ops nobody reads, tensors nobody references; renumbers tensors.

`diagnose(graph)` says why a remaining SPACE_TO_BATCH_ND was not folded, in the
(op index, op kind, reason) form of UnsupportedOpError.problems.
"""
import dataclasses
import itertools

import numpy as np

from . import lower
from .errors import ModelError
from .graph import Graph, Op

_INT_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


# --- graph helpers -------------------------------------------------------------------

def _producers(graph):
    """tensor index -> the op that writes it."""
    return {t: op for op in graph.ops for t in op.outputs}


def _readers(graph, t):
    """Ops reading tensor t."""
    return [op for op in graph.ops if t in op.inputs]


def _const(graph, t):
    return None if t < 0 else graph.tensors[t].data


def _same_quantization(a, b):
    if (a.scales is None) != (b.scales is None):
        return False
    if a.scales is None:
        return True
    return (np.array_equal(a.scales, b.scales) and np.array_equal(a.zero_points, b.zero_points)
            and (len(a.scales) == 1 or a.quantized_dim == b.quantized_dim))


def _replace_ops(graph, removed, added=()):
    """A new Graph without the ops in `removed`; each (position op, new op) of `added`
    is put where `position op` was."""
    where = {id(old): new for old, new in added}
    drop = {id(op) for op in removed}
    ops = []
    for op in graph.ops:
        if id(op) in where:
            ops.append(where[id(op)])
        elif id(op) not in drop:
            ops.append(op)
    return dataclasses.replace(graph, ops=ops)


def _rename_input(graph, old, new):
    """A new Graph where every op reading tensor `old` reads `new` instead."""
    ops = [dataclasses.replace(op, inputs=[new if i == old else i for i in op.inputs])
           if old in op.inputs else op for op in graph.ops]
    return dataclasses.replace(graph, ops=ops)


# --- constant folding of shape arithmetic --------------------------------------------

def _strided_slice_1d(x, begin, end, stride, begin_mask, end_mask, shrink):
    if shrink:
        return np.asarray(x[int(begin)])
    b = None if begin_mask else int(begin)
    e = None if end_mask else int(end)
    return x[b:e:int(stride)]


def _eval_strided_slice(op, values, out):
    """STRIDED_SLICE of a 1-D constant (shape vectors are 1-D), or None.

    The masks are read from op.options when the reader recorded them. When it did
    not, every mask setting is tried and the fold happens only if all settings that
    give the output tensor's static shape agree on the value.
    """
    x, begin, end, stride = values
    if x.ndim != 1 or begin.size != 1 or int(stride.reshape(-1)[0]) == 0:
        return None
    o = op.options
    if o.get("ellipsis_mask") or o.get("new_axis_mask") or o.get("offset"):
        return None
    args = (x, begin.reshape(-1)[0], end.reshape(-1)[0], stride.reshape(-1)[0])
    try:
        if "shrink_axis_mask" in o:
            return _strided_slice_1d(*args, o.get("begin_mask", 0) & 1, o.get("end_mask", 0) & 1,
                                     o["shrink_axis_mask"] & 1)
        found = [_strided_slice_1d(*args, *masks) for masks in itertools.product((0, 1), repeat=3)]
        found.append(x)  # ellipsis_mask: the whole vector
    except IndexError:
        return None
    found = [v for v in found if v.shape == tuple(out.shape)]
    if found and all(np.array_equal(v, found[0]) for v in found):
        return found[0]
    return None


def _eval_gather(op, values, out):
    params, indices = values[:2]
    if op.options.get("batch_dims", 0):
        return None
    return np.take(params, indices, axis=op.options.get("axis", 0))


# op kind -> fn(op, input values, output Tensor) -> value or None (= do not fold)
_FOLDERS = {
    "STRIDED_SLICE": _eval_strided_slice,
    "PACK": lambda op, v, out: np.stack(v, axis=op.options.get("axis", 0)),
    "CONCATENATION": lambda op, v, out: np.concatenate(v, axis=op.options.get("axis", 0)),
    "GATHER": _eval_gather,
    "ADD": lambda op, v, out: v[0] + v[1],
    "SUB": lambda op, v, out: v[0] - v[1],
    "MUL": lambda op, v, out: v[0] * v[1],
    "FLOOR_DIV": lambda op, v, out: np.floor_divide(v[0], v[1]) if np.all(v[1]) else None,
    "RESHAPE": lambda op, v, out: v[0].reshape(out.shape),
    "SQUEEZE": lambda op, v, out: v[0].reshape(out.shape),
    "EXPAND_DIMS": lambda op, v, out: v[0].reshape(out.shape),
}


def _foldable_value(graph, op):
    """The constant value of op's single output, or None if it cannot be folded."""
    if len(op.outputs) != 1:
        return None
    out = graph.tensors[op.outputs[0]]
    if np.dtype(out.dtype) not in _INT_DTYPES or out.scales is not None:
        return None  # only plain integer (shape) arithmetic: no quantized or float math
    if op.kind == "SHAPE":
        x = graph.tensors[op.inputs[0]]
        if not x.shape and x.data is None:
            return None  # unknown rank
        return np.asarray(x.shape, dtype=out.dtype)
    fold = _FOLDERS.get(op.kind)
    values = [_const(graph, i) for i in op.inputs]
    if fold is None or not values or any(v is None for v in values):
        return None
    if any(np.dtype(v.dtype) not in _INT_DTYPES for v in values):
        return None
    value = fold(op, values, out)
    if value is None or tuple(np.shape(value)) != tuple(out.shape):
        return None
    return np.asarray(value).astype(out.dtype)


def fold_constants(graph):
    """Replace an integer shape op whose inputs are all constant (for SHAPE: whose input
    has a static shape) by a constant output tensor. SHAPE takes the shape stored in the
    file, where a dynamic batch reads 1: the compiled model has that static batch. The
    producers of the folded op's inputs are left to prune."""
    folded = {}
    for op in graph.ops:
        value = _foldable_value(graph, op)
        if value is not None:
            folded[op.outputs[0]] = value
            break  # later folds read this constant: one per call, simplify loops
    if not folded:
        return graph
    tensors = list(graph.tensors)
    for t, value in folded.items():
        tensors[t] = dataclasses.replace(tensors[t], shape=tuple(value.shape), data=value)
    ops = [op for op in graph.ops if not any(t in folded for t in op.outputs)]
    return dataclasses.replace(graph, tensors=tensors, ops=ops)


# --- dilated convolutions: SPACE_TO_BATCH_ND -> conv -> BATCH_TO_SPACE_ND --------------

_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def _paddings_for(kernel, dilation, before, after):
    """The TFLite paddings (SAME / VALID) that pad `before`/`after` around a stride-1 window
    of `kernel` taps `dilation` apart."""
    span = (kernel - 1) * dilation
    kinds = set()
    if before == 0 and after == 0:
        kinds.add("VALID")
    if before == span // 2 and after == span - span // 2:
        kinds.add("SAME")
    return kinds


def _single_reader(graph, t, kinds):
    """The one op reading t as its first input if it is of `kinds` and t is not a graph
    output; else a reason string."""
    readers = _readers(graph, t)
    if t in graph.outputs or len(readers) != 1:
        return "its output %r is read by %d ops or is a graph output" % (
            graph.tensors[t].name, len(readers))
    op = readers[0]
    if op.kind not in kinds or op.inputs[0] != t:
        return "its output feeds %s, not %s" % (op.kind, " or ".join(kinds))
    return op


def _match_conv(graph, s2b):
    """(conv, b2s) around a SPACE_TO_BATCH_ND, or a reason string."""
    if len(s2b.inputs) != 3:
        return "SPACE_TO_BATCH_ND needs input, block shape and paddings"
    conv = _single_reader(graph, s2b.outputs[0], _CONVS)
    if isinstance(conv, str):
        return conv
    o = conv.options
    steps = (o.get("stride_h"), o.get("stride_w"), o.get("dilation_h"), o.get("dilation_w"))
    if steps != (1, 1, 1, 1):
        return "the convolution in batch space has strides or dilations other than 1"
    if o.get("padding") != "VALID":
        return "the convolution in batch space uses %s padding, not VALID" % o.get("padding")
    b2s = _single_reader(graph, conv.outputs[0], ("BATCH_TO_SPACE_ND",))
    if isinstance(b2s, str):
        return "the convolution: " + b2s
    if len(b2s.inputs) != 3:
        return "BATCH_TO_SPACE_ND needs input, block shape and crops"
    return conv, b2s


def _match_geometry(graph, s2b, conv, b2s):
    """(padding, (dilation_h, dilation_w)) of the equivalent convolution, or a reason."""
    block, pads = _const(graph, s2b.inputs[1]), _const(graph, s2b.inputs[2])
    block2, crops = _const(graph, b2s.inputs[1]), _const(graph, b2s.inputs[2])
    if any(v is None for v in (block, pads, block2, crops)):
        return "block shape, paddings and crops must be constants"
    if block.shape != (2,) or pads.shape != (2, 2) or crops.shape != (2, 2):
        return "only 2-D spatial blocks are supported (block shape %s)" % (block.shape,)
    if not np.array_equal(block, block2) or np.any(block < 1):
        return "block shapes differ: %s vs %s" % (block.tolist(), block2.tolist())
    w = graph.tensors[conv.inputs[1]].shape
    kernel = w[1:3]
    kinds = {"SAME", "VALID"}
    for axis, name in ((0, "height"), (1, "width")):
        before = int(pads[axis][0] - crops[axis][0])
        after = int(pads[axis][1] - crops[axis][1])
        found = _paddings_for(kernel[axis], int(block[axis]), before, after)
        if not found:
            return ("along %s the paddings %s minus the crops %s pad the input by (%d, %d), "
                    "which is neither SAME nor VALID for a %d-tap kernel at dilation %d"
                    % (name, pads[axis].tolist(), crops[axis].tolist(), before, after,
                       kernel[axis], block[axis]))
        kinds &= found
    if not kinds:
        return "height and width need different paddings (one SAME, one VALID)"
    return ("VALID" if "VALID" in kinds else "SAME"), (int(block[0]), int(block[1]))


def _check_tensors(graph, s2b, conv, b2s, padding, dilation):
    """A reason the fused convolution would not compute the same tensor, or None."""
    t = graph.tensors
    x, y = t[s2b.inputs[0]], t[b2s.outputs[0]]
    if not (_same_quantization(x, t[s2b.outputs[0]]) and _same_quantization(t[conv.outputs[0]], y)):
        return "SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND change the quantization"
    if len(x.shape) != 4 or len(y.shape) != 4:
        return "input and output must be NHWC"
    k_h, k_w = t[conv.inputs[1]].shape[1:3]
    want = (x.shape[0],
            lower.conv_output_size(padding, x.shape[1], k_h, 1, dilation[0]),
            lower.conv_output_size(padding, x.shape[2], k_w, 1, dilation[1]),
            t[conv.outputs[0]].shape[3])
    if tuple(y.shape) != want:
        return "output shape %s is not the dilated convolution's %s" % (tuple(y.shape), want)
    return None


def _match_dilated(graph, s2b):
    """(s2b, conv, b2s, fused conv Op), or a reason string why the pattern does not fold."""
    matched = _match_conv(graph, s2b)
    if isinstance(matched, str):
        return matched
    conv, b2s = matched
    geometry = _match_geometry(graph, s2b, conv, b2s)
    if isinstance(geometry, str):
        return geometry
    padding, dilation = geometry
    reason = _check_tensors(graph, s2b, conv, b2s, padding, dilation)
    if reason:
        return reason
    options = dict(conv.options, padding=padding, dilation_h=dilation[0], dilation_w=dilation[1])
    fused = Op(conv.kind, [s2b.inputs[0]] + list(conv.inputs[1:]), list(b2s.outputs),
               options, conv.index)
    return s2b, conv, b2s, fused


def fold_dilated_conv(graph):
    """Fold SPACE_TO_BATCH_ND -> CONV_2D/DEPTHWISE_CONV_2D -> BATCH_TO_SPACE_ND back into
    one dilated convolution (first match; simplify loops)."""
    for op in graph.ops:
        if op.kind == "SPACE_TO_BATCH_ND":
            match = _match_dilated(graph, op)
            if not isinstance(match, str):
                s2b, conv, b2s, fused = match
                return _replace_ops(graph, [s2b, conv], [(b2s, fused)])
    return graph


def fused_patterns(graph):
    """(name, [positions in graph.ops], fused Op) of every multi-op pattern the compiler
    fuses into one kernel: where `npu validate` compares, at the pattern's last op."""
    found = []
    for op in graph.ops:
        if op.kind == "SPACE_TO_BATCH_ND":
            match = _match_dilated(graph, op)
            if not isinstance(match, str):
                s2b, conv, b2s, fused = match
                positions = [i for i, o in enumerate(graph.ops) if o is s2b or o is conv or o is b2s]
                found.append(("dilated " + conv.kind, positions, fused))
    return found


def diagnose(graph):
    """(op index, kind, reason) for every SPACE_TO_BATCH_ND that fold_dilated_conv leaves."""
    problems = []
    for op in graph.ops:
        if op.kind == "SPACE_TO_BATCH_ND":
            match = _match_dilated(graph, op)
            if isinstance(match, str):
                problems.append((op.index, op.kind, "not a foldable dilated convolution: " + match))
    return problems


# --- pass-through ops ----------------------------------------------------------------

def _bypass(graph, op):
    """Drop `op`, whose output equals its first input; readers read the input instead.
    None when the output is a graph output (its name and index must stay)."""
    src, dst = op.inputs[0], op.outputs[0]
    if dst in graph.outputs:
        return None
    return _rename_input(_replace_ops(graph, [op]), dst, src)


def drop_identity_reshapes(graph):
    """Remove a RESHAPE (or SQUEEZE / EXPAND_DIMS) whose output has its input's shape."""
    for op in graph.ops:
        if op.kind in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
            x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
            if (tuple(x.shape) == tuple(y.shape) and np.dtype(x.dtype) == np.dtype(y.dtype)
                    and _same_quantization(x, y)):
                new = _bypass(graph, op)
                if new is not None:
                    return new
    return graph


def merge_reshape_chains(graph):
    """RESHAPE(RESHAPE(x)) -> RESHAPE(x) when the inner one has no other reader."""
    producers = _producers(graph)
    for op in graph.ops:
        inner = producers.get(op.inputs[0]) if op.kind == "RESHAPE" else None
        if (inner is not None and inner.kind == "RESHAPE" and inner.outputs[0] not in graph.outputs
                and len(_readers(graph, inner.outputs[0])) == 1):
            merged = dataclasses.replace(op, inputs=[inner.inputs[0]] + list(op.inputs[1:]))
            return _replace_ops(graph, [inner], [(op, merged)])
    return graph


def cancel_requantize_pairs(graph):
    """QUANTIZE(DEQUANTIZE(x)) back to x's exact type and quantization -> x; likewise a
    QUANTIZE that requantizes to the quantization its input already has."""
    producers = _producers(graph)
    for op in graph.ops:
        if op.kind != "QUANTIZE" or op.outputs[0] in graph.outputs:
            continue
        src = op.inputs[0]
        deq = producers.get(src)
        if deq is not None and deq.kind == "DEQUANTIZE":
            src = deq.inputs[0]
        x, y = graph.tensors[src], graph.tensors[op.outputs[0]]
        if (np.dtype(x.dtype) == np.dtype(y.dtype) and tuple(x.shape) == tuple(y.shape)
                and x.scales is not None and _same_quantization(x, y)):
            return _rename_input(_replace_ops(graph, [op]), op.outputs[0], src)
    return graph


# --- layout moves a FULLY_CONNECTED can absorb ----------------------------------------

def _single_use_producer(graph, t, kind, producers):
    """The op of `kind` writing t when t is read only once and is not a graph output."""
    op = producers.get(t)
    if (op is None or op.kind != kind or t in graph.outputs or len(_readers(graph, t)) != 1
            or not _same_quantization(graph.tensors[op.inputs[0]], graph.tensors[t])):
        return None
    return op


def _row_permutation(shape, perm, depth):
    """sigma with transpose(x, perm) rows of `depth` == x's rows of `depth` read at sigma,
    the same for every row; None when the transpose moves values between rows."""
    size = int(np.prod(shape, dtype=np.int64))
    if depth < 1 or size % depth:
        return None
    src = np.arange(size).reshape(shape).transpose(perm).reshape(-1, depth)
    src = src - np.arange(src.shape[0])[:, None] * depth
    if src.min() < 0 or src.max() >= depth or np.any(src != src[0]):
        return None
    return src[0]


def fold_transpose_into_fully_connected(graph):
    """FULLY_CONNECTED(RESHAPE(TRANSPOSE(x))) or FULLY_CONNECTED(TRANSPOSE(x)) ->
    FULLY_CONNECTED(x) with the weights' columns permuted: exact (the same products summed
    in another order: integer sums), one COPY less. Only when each row of the transposed
    values is a permutation of the same row of x."""
    producers = _producers(graph)
    for fc in graph.ops:
        if fc.kind != "FULLY_CONNECTED" or len(fc.inputs) < 2:
            continue
        w = graph.tensors[fc.inputs[1]]
        if w.data is None or len(w.shape) != 2:
            continue
        removed = []
        src = fc.inputs[0]
        reshape = _single_use_producer(graph, src, "RESHAPE", producers)
        if reshape is not None:
            removed.append(reshape)
            src = reshape.inputs[0]
        transpose = _single_use_producer(graph, src, "TRANSPOSE", producers)
        perm = None if transpose is None else _const(graph, transpose.inputs[1])
        if perm is None:
            continue
        x = graph.tensors[transpose.inputs[0]]
        sigma = _row_permutation(x.shape, [int(k) for k in np.asarray(perm).reshape(-1)],
                                 w.shape[1])
        if sigma is None:
            continue
        data = np.empty_like(w.data)
        data[:, sigma] = w.data
        tensors = graph.tensors + [dataclasses.replace(w, name=w.name + "/permuted", data=data)]
        inputs = [transpose.inputs[0], len(tensors) - 1] + list(fc.inputs[2:])
        new = _replace_ops(graph, removed + [transpose], [(fc, dataclasses.replace(fc, inputs=inputs))])
        return dataclasses.replace(new, tensors=tensors)
    return graph


# --- dead code -----------------------------------------------------------------------

def prune(graph):
    """Drop ops whose outputs nobody reads and tensors nobody references; tensors are
    renumbered in their original order (graph inputs and outputs follow)."""
    live = set(graph.outputs)
    kept = []
    for op in reversed(graph.ops):
        if any(t in live for t in op.outputs):
            kept.append(op)
            live.update(i for i in op.inputs if i >= 0)
    kept.reverse()
    used = sorted(set(graph.inputs) | set(graph.outputs)
                  | {t for op in kept for t in op.inputs + op.outputs if t >= 0})
    if len(kept) == len(graph.ops) and len(used) == len(graph.tensors):
        return graph
    new_index = {old: new for new, old in enumerate(used)}

    def renumber(ts):
        return [new_index[t] if t >= 0 else t for t in ts]

    ops = [dataclasses.replace(op, inputs=renumber(op.inputs), outputs=renumber(op.outputs))
           for op in kept]
    return Graph([graph.tensors[t] for t in used], ops, renumber(graph.inputs),
                 renumber(graph.outputs), graph.name)


# --- driver --------------------------------------------------------------------------

REWRITES = (fold_constants, fold_dilated_conv, drop_identity_reshapes, merge_reshape_chains,
            cancel_requantize_pairs, fold_transpose_into_fully_connected, prune)


def simplify(graph, rewrites=REWRITES, max_rounds=1000):
    """Apply `rewrites` until none changes the graph; returns the simplified Graph."""
    for _ in range(max_rounds):
        changed = False
        for rewrite in rewrites:
            new = rewrite(graph)
            if new is not graph:
                graph, changed = new, True
        if not changed:
            return graph
    raise ModelError("%s: graph rewrites did not reach a fixed point in %d rounds; this is an "
                     "npu-sdk bug, please report it with the model" % (graph.name, max_rounds))
