"""The compiler driver: Graph -> checked -> lowered -> planned -> packed blob.

Each stage is a function of the previous stage's value; only compile_file
touches the file system.
"""
from dataclasses import dataclass

import numpy as np

from . import blob, lower, ops, plan, rewrite, tables16, tflite
from .errors import BlobFormatError, ModelError, UnsupportedOpError
from .quantize import is_float_model

_BLOB_DTYPES = {np.dtype(np.int8): "int8", np.dtype(np.int32): "int32",
                np.dtype(np.float32): "float32", np.dtype(np.int16): "int16",
                np.dtype(np.uint8): "uint8", np.dtype(np.int64): "int64"}
SUPPORTED_HINT = "Supported ops: %s." % ", ".join(ops.SUPPORTED)
INT8 = np.dtype(np.int8)
INT16 = np.dtype(np.int16)
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


def _count(graph, i):
    return int(np.prod(graph.tensors[i].shape, dtype=np.int64))


def _is_16x8(graph, op):
    """int16 activations (TFLite's 16x8 quantization) rather than int8."""
    return _dtype(graph, op.inputs[0]) == INT16 and _dtype(graph, op.outputs[0]) == INT16


def _int16_activations(graph, op, inputs):
    """Reasons unless the given inputs and the output are 16x8 int16: quantized, zero point 0."""
    reasons = []
    for i in list(inputs) + [op.outputs[0]]:
        t = graph.tensors[i]
        if np.dtype(t.dtype) != INT16 or t.scales is None or np.any(t.zero_points != 0):
            reasons.append("tensor %r must be int16 with zero point 0 (16x8)" % t.name)
    return reasons


#: 16x8 int64 accumulators stay within TFLM's 2^47: |bias| <= 2^46, in_depth < 2^24.
_MAX_BIAS_S64 = 1 << 46


def _check_fully_connected(graph, op):
    reasons = []
    x, w = op.inputs[0], op.inputs[1]
    bias = op.inputs[2] if len(op.inputs) > 2 else -1
    int16 = _is_16x8(graph, op)
    bias_dtype = np.int64 if int16 else np.int32
    if int16:
        reasons += _int16_activations(graph, op, [x])
    elif _dtype(graph, x) != INT8 or _dtype(graph, op.outputs[0]) != INT8:
        reasons.append("input and output must be int8, or int16 for 16x8 (got %s -> %s)"
                       % (_dtype(graph, x), _dtype(graph, op.outputs[0])))
    else:
        reasons += _int8_activations(graph, op, [x])
    wt = graph.tensors[w]
    if not wt.is_const or wt.dtype != INT8 or len(wt.shape) != 2:
        reasons.append("weights must be a constant int8 [out, in] matrix")
    elif wt.zero_points is not None and np.any(wt.zero_points != 0):
        reasons.append("weights must be symmetric (zero point 0)")
    elif wt.scales is None or len(wt.scales) not in (1, wt.shape[0]):
        reasons.append("weights need one scale or one per output row")
    elif _count(graph, x) % max(wt.shape[1], 1) or wt.shape[1] < 1:
        reasons.append("input of %d values is not a whole number of rows of %d"
                       % (_count(graph, x), wt.shape[1]))
    if bias >= 0 and (not graph.tensors[bias].is_const
                      or np.dtype(graph.tensors[bias].dtype) != bias_dtype):
        reasons.append("bias must be a constant %s vector" % np.dtype(bias_dtype))
    elif int16 and bias >= 0 and np.any(np.abs(graph.tensors[bias].data) > _MAX_BIAS_S64):
        reasons.append("16x8 bias values must be within +-2^46 (int64 accumulators)")
    if int16 and not reasons:
        wt = graph.tensors[w]
        if wt.shape[1] >= 1 << 24:
            reasons.append("16x8 in_depth must be below 2^24")
        reasons += _check_shift_s16(graph, op, wt.scales, wt.shape[0])
    if op.options.get("activation", "NONE") not in lower.ACTIVATIONS:
        reasons.append("fused activation %s is not one of %s" % (op.options["activation"], lower.ACTIVATIONS))
    if op.options.get("weights_format", 0) != 0:
        reasons.append("shuffled weights format is not supported")
    return reasons


def _check_softmax(graph, op):
    out = graph.tensors[op.outputs[0]]
    if _is_16x8(graph, op):
        return _check_softmax_s16(graph, op)
    if _dtype(graph, op.inputs[0]) != INT8 or out.dtype != INT8:
        return ["input and output must be int8"]
    reasons = _int8_activations(graph, op, op.inputs[:1])
    if reasons:
        return reasons
    if not graph.tensors[op.inputs[0]].shape or graph.tensors[op.inputs[0]].shape[-1] < 1:
        return ["input must have a last axis of at least one value"]
    return _fixed_output(op, out)


def _check_softmax_s16(graph, op):
    """16x8 SOFTMAX: int16 in (zero point 0) and out (1/32768, 0), a last axis of at most
    65535 values."""
    reasons = _int16_activations(graph, op, op.inputs[:1])
    if reasons:
        return reasons
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if not x.shape or not 1 <= x.shape[-1] <= 65535:
        return ["input must have a last axis of 1 to 65535 values"]
    try:
        lower.softmax_s16_params(x.scale, op.options.get("beta", 1.0), y.scale, y.zero_point)
    except ModelError as e:
        return [str(e)]
    return []


def _fixed_output(op, y):
    """Reasons unless y has the output quantization TFLM's int8 kernel fixes (if it does)."""
    fixed = ops.OPS[op.kind].fixed_output
    if fixed is not None:
        scale, zp = fixed
        if y.zero_point != zp or abs(y.scale - scale) > 1e-9:
            return ["int8 output must have scale 1/%d and zero point %d (got %g, %d)"
                    % (round(1 / scale), zp, y.scale, y.zero_point)]
    return []


def _check_reshape(graph, op):
    a, b = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    return [] if a.nbytes == b.nbytes and a.dtype == b.dtype else ["input and output sizes differ"]


def _check_quantize(graph, op):
    """QUANTIZE: float32 -> int8 or int16, or a requantization between int8 and int16 (an
    int16 side with zero point 0: 16x8)."""
    src, dst = _dtype(graph, op.inputs[0]), _dtype(graph, op.outputs[0])
    if src == INT8 and dst == INT8:
        return _check_pointwise(graph, op)
    if src in (INT8, INT16) and dst in (INT8, INT16):
        x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        reasons = [r for t, r in ((x, "input"), (y, "output")) if t.scales is None or (
            np.dtype(t.dtype) == INT16 and np.any(t.zero_points != 0))]
        if reasons:
            return ["%s must be quantized (int16 with zero point 0)" % " and ".join(reasons)]
        try:  # its output shape: compiler.SHAPES
            lower.requantize_params(x.scale, y.scale)
        except ModelError as e:
            return [str(e)]
        return []
    if src != FLOAT32 or dst not in (INT8, INT16):
        return ["only float32 -> int8 or int16 and requantization between int8 and int16 are "
                "supported (got %s -> %s)" % (src, dst)]
    return []


def _check_dequantize(graph, op):
    if _dtype(graph, op.inputs[0]) not in (INT8, INT16) or _dtype(graph, op.outputs[0]) != FLOAT32:
        return ["only int8 or int16 -> float32 is supported"]
    return []


def _int8_activations(graph, op, inputs, rank=None):
    """Reasons unless the given inputs and the output are quantized int8 (of `rank`)."""
    reasons = []
    for i in list(inputs) + [op.outputs[0]]:
        t = graph.tensors[i]
        if np.dtype(t.dtype) != INT8 or t.scales is None:
            reasons.append("tensor %r must be quantized int8 (got %s)" % (t.name, np.dtype(t.dtype)))
        elif rank is not None and len(t.shape) != rank:
            reasons.append("tensor %r must have rank %d (got shape %s)" % (t.name, rank, t.shape))
        elif 0 in tuple(t.shape):
            reasons.append("tensor %r has an empty dimension (shape %s)" % (t.name, t.shape))
    return reasons


def _activations(graph, op, inputs):
    """Reasons unless the inputs and the output are all int8, or all 16x8 int16
    (the 16x8 ops whose int8 and int16 kernels share a lowering)."""
    if _dtype(graph, op.outputs[0]) == INT16:
        return _int16_activations(graph, op, inputs)
    return _int8_activations(graph, op, inputs)


def _window_options(op, filter_h, filter_w, dilated=True):
    """Reasons the padding/stride/dilation/activation options are unsupported."""
    o = op.options
    reasons = []
    if o.get("padding") not in lower.PADDINGS:
        reasons.append("padding %s is not one of %s" % (o.get("padding"), lower.PADDINGS))
    keys = ("stride_h", "stride_w") + (("dilation_h", "dilation_w") if dilated else ())
    for key in keys:
        if not isinstance(o.get(key), int) or o[key] < 1:
            reasons.append("%s must be >= 1 (got %r)" % (key, o.get(key)))
    if filter_h < 1 or filter_w < 1:
        reasons.append("filter must be at least 1x1 (got %dx%d)" % (filter_h, filter_w))
    if o.get("activation", "NONE") not in lower.ACTIVATIONS:
        reasons.append("fused activation %s is not one of %s" % (o["activation"], lower.ACTIVATIONS))
    return reasons


def _window_geometry(graph, op, filter_h, filter_w, dilated=True):
    """(out_h, out_w, pad_h, pad_w) from the options; checks nothing."""
    o = op.options
    _, in_h, in_w, _ = graph.tensors[op.inputs[0]].shape
    dh, dw = (o["dilation_h"], o["dilation_w"]) if dilated else (1, 1)
    out_h = lower.conv_output_size(o["padding"], in_h, filter_h, o["stride_h"], dh)
    out_w = lower.conv_output_size(o["padding"], in_w, filter_w, o["stride_w"], dw)
    return (out_h, out_w,
            lower.conv_padding(o["padding"], in_h, filter_h, o["stride_h"], dh, out_h),
            lower.conv_padding(o["padding"], in_w, filter_w, o["stride_w"], dw, out_w))


def _check_conv_weights(graph, op, out_c, axis):
    """Symmetric per-tensor or per-channel (on `axis`) int8 weights, int32 bias of out_c
    (int64 for 16x8, within the int64 accumulators' bound, shifts up to 7)."""
    reasons = []
    wt = graph.tensors[op.inputs[1]]
    if wt.zero_points is not None and np.any(wt.zero_points != 0):
        reasons.append("weights must be symmetric (zero point 0)")
    if wt.scales is None or len(wt.scales) not in (1, out_c) or (
            len(wt.scales) > 1 and wt.quantized_dim != axis):
        reasons.append("weights need one scale or one per output channel on axis %d" % axis)
    bias = op.inputs[2] if len(op.inputs) > 2 else -1
    int16 = _is_16x8(graph, op)
    bias_dtype = np.dtype(np.int64 if int16 else np.int32)
    if bias >= 0:
        bt = graph.tensors[bias]
        if not bt.is_const or np.dtype(bt.dtype) != bias_dtype or _count(graph, bias) != out_c:
            reasons.append("bias must be a constant %s vector of %d" % (bias_dtype, out_c))
        elif int16 and np.any(np.abs(bt.data) > _MAX_BIAS_S64):
            reasons.append("16x8 bias values must be within +-2^46 (int64 accumulators)")
    if int16 and not reasons:
        reasons += _check_shift_s16(graph, op, wt.scales, out_c)
    return reasons


def _check_shift_s16(graph, op, weight_scales, out_c):
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    p = lower.fully_connected_params(x.scale, 0, weight_scales, y.scale, 0, "NONE", out_c)
    if int(np.max(p["shift"])) > 7:
        return ["input scale * weight scale / output scale is above 2^7: TFLM's 16x8 kernels "
                "take shifts up to 7"]
    return []


def _conv_activations(graph, op):
    """int8 NHWC input and output, or int16 ones (16x8)."""
    if not _is_16x8(graph, op):
        return _int8_activations(graph, op, [op.inputs[0]], rank=4)
    reasons = _int16_activations(graph, op, [op.inputs[0]])
    for i in (op.inputs[0], op.outputs[0]):
        if len(graph.tensors[i].shape) != 4 or 0 in tuple(graph.tensors[i].shape):
            reasons.append("tensor %r must be a non-empty rank-4 NHWC tensor (got shape %s)"
                           % (graph.tensors[i].name, graph.tensors[i].shape))
    return reasons


def _check_conv_2d(graph, op):
    """CONV_2D: int8 NHWC input/output, constant int8 OHWI weights with in_c equal to the
    input's (no groups), optional int32 bias, SAME/VALID padding, strides and dilations >= 1."""
    if len(op.inputs) < 2 or op.inputs[1] < 0:
        return ["needs input and weights"]
    reasons = _conv_activations(graph, op)
    wt = graph.tensors[op.inputs[1]]
    if not wt.is_const or np.dtype(wt.dtype) != INT8 or len(wt.shape) != 4:
        return reasons + ["weights must be a constant int8 [out_c, k_h, k_w, in_c] tensor"]
    if reasons:
        return reasons
    out_c, k_h, k_w, w_in_c = wt.shape
    if w_in_c != graph.tensors[op.inputs[0]].shape[3]:
        reasons.append("weights take %d input channels, the input has %d (grouped convolution "
                       "is not supported)" % (w_in_c, graph.tensors[op.inputs[0]].shape[3]))
    reasons += _check_conv_weights(graph, op, out_c, 0) + _window_options(op, k_h, k_w)
    return reasons + _check_macs(k_h * k_w * w_in_c, "k_h * k_w * in_c")


def _check_macs(macs, what):
    """The same limit as the firmware's and the C kernels': int32 accumulators never overflow."""
    if macs > ops.MAX_MACS:
        return ["%s is %d multiply-accumulates per output value, above %d" % (what, macs, ops.MAX_MACS)]
    return []


def _check_depthwise_conv_2d(graph, op):
    """DEPTHWISE_CONV_2D: int8 NHWC input/output, constant int8 [1, k_h, k_w, in_c * depth
    multiplier] weights, optional int32 bias, SAME/VALID padding, strides, dilations >= 1."""
    if len(op.inputs) < 2 or op.inputs[1] < 0:
        return ["needs input and weights"]
    reasons = _conv_activations(graph, op)
    wt = graph.tensors[op.inputs[1]]
    if not wt.is_const or np.dtype(wt.dtype) != INT8 or len(wt.shape) != 4 or wt.shape[0] != 1:
        return reasons + ["weights must be a constant int8 [1, k_h, k_w, out_c] tensor"]
    if reasons:
        return reasons
    _, k_h, k_w, out_c = wt.shape
    in_c = graph.tensors[op.inputs[0]].shape[3]
    if out_c % in_c:
        reasons.append("weights have %d channels, not a multiple of the input's %d" % (out_c, in_c))
    reasons += _check_conv_weights(graph, op, out_c, 3) + _window_options(op, k_h, k_w)
    return reasons + _check_macs(k_h * k_w, "k_h * k_w")


def _same_quantization(graph, a, b):
    ta, tb = graph.tensors[a], graph.tensors[b]
    if ta.zero_point != tb.zero_point or abs(ta.scale - tb.scale) > 1e-6 * ta.scale:
        return ["input and output must share scale and zero point (got %g, %d -> %g, %d)"
                % (ta.scale, ta.zero_point, tb.scale, tb.zero_point)]
    return []


def _check_pool_2d(graph, op):
    """AVERAGE_POOL_2D / MAX_POOL_2D: int8 (or 16x8 int16) NHWC, the same quantization in and
    out, SAME/VALID padding, strides >= 1."""
    reasons = _conv_activations(graph, op)
    if reasons:
        return reasons
    k_h, k_w = op.options.get("filter_h", 0), op.options.get("filter_w", 0)
    if _is_16x8(graph, op):
        reasons += _check_macs(k_h * k_w, "k_h * k_w (int16 sums)")
    return (_same_quantization(graph, op.inputs[0], op.outputs[0])
            + _window_options(op, k_h, k_w, dilated=False))


# elementwise op -> lower.py's function of its kernel parameters
_ELEMENTWISE_PARAMS = {"ADD": lower.add_params, "MUL": lower.mul_params}


def _check_elementwise(graph, op):
    """ADD / MUL: two int8 inputs (activations or constants) of rank <= 4 that broadcast to
    the int8 output, or 16x8 int16 ones (zero points 0); ADD needs its output rescaling
    factor below 1."""
    if len(op.inputs) != 2 or min(op.inputs) < 0:
        return ["needs exactly two inputs (got %d)" % len(op.inputs)]
    int16 = _dtype(graph, op.outputs[0]) == INT16
    reasons = _activations(graph, op, op.inputs[:2])
    if reasons:
        return reasons
    x1, x2, y = (graph.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    if max(len(x1.shape), len(x2.shape), len(y.shape)) > 4:
        return ["rank above 4 is not supported"]
    try:
        np.broadcast_shapes(x1.shape, x2.shape)
    except ValueError:
        return ["input shapes %s and %s do not broadcast" % (x1.shape, x2.shape)]
    if op.options.get("activation", "NONE") not in lower.ACTIVATIONS:
        return ["fused activation %s is not one of %s" % (op.options["activation"], lower.ACTIVATIONS)]
    params = _ELEMENTWISE_PARAMS[op.kind]
    try:
        params(x1.scale, x1.zero_point, x2.scale, x2.zero_point, y.scale, y.zero_point,
               op.options.get("activation", "NONE"), int16)
    except ModelError as e:
        return [str(e)]
    return []


# int8 -> int8 pointwise op -> fn(op, (in scale, in zero point, out scale, out zero point))
# returning its 256-entry table (lower.py raises ModelError where it cannot)
_LUTS = {
    "RELU": lambda op, q: lower.relu_lut("RELU", *q),
    "RELU6": lambda op, q: lower.relu_lut("RELU6", *q),
    "LEAKY_RELU": lambda op, q: lower.leaky_relu_lut(op.options.get("alpha", 0.0), *q),
    "HARD_SWISH": lambda op, q: lower.hard_swish_lut(*q),
    "LOGISTIC": lambda op, q: lower.logistic_lut(q[0], q[1]),
    "TANH": lambda op, q: lower.tanh_lut(q[0], q[1]),
    "QUANTIZE": lambda op, q: lower.requantize_lut(*q),  # int8 -> int8
}


def _lut(graph, op):
    """The 256-entry table of an int8 -> int8 pointwise op (raises ModelError)."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    return _LUTS[op.kind](op, (x.scale, x.zero_point, y.scale, y.zero_point))


_SIGMOID_S16 = ("LOGISTIC", "TANH")  # the 16x8 pointwise ops with their own kernels; RELU,
_RESCALE_S16 = ("RELU", "RELU6", "LEAKY_RELU")  # RELU6 and LEAKY_RELU share RESCALE_S16


def _rescale_s16(graph, op):
    """RESCALE_S16's parameters of a 16x8 RELU, RELU6 or LEAKY_RELU (raises ModelError)."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    return lower.rescale_s16_params(op.kind, op.options.get("alpha", 0.0), x.scale, y.scale)


def _check_pointwise_s16(graph, op):
    """16x8 LOGISTIC / TANH (output scale 2^-15), RELU, RELU6 (its input's quantization),
    LEAKY_RELU: int16 in and out, zero points 0."""
    if op.kind not in _SIGMOID_S16 + _RESCALE_S16:
        return ["int16 (16x8) %s is not supported (TFLite Micro has no int16 kernel for it)"
                % op.kind]
    reasons = _int16_activations(graph, op, op.inputs)
    if not reasons and op.kind == "RELU6":
        reasons = _same_quantization(graph, op.inputs[0], op.outputs[0])
    if reasons:
        return reasons
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    try:
        if op.kind in _SIGMOID_S16:
            lower.sigmoid_s16_params(x.scale, y.scale, op.kind == "TANH")
        else:
            _rescale_s16(graph, op)
    except ModelError as e:
        return [str(e)]
    return []


def _check_pointwise(graph, op):
    """RELU, RELU6, LEAKY_RELU, HARD_SWISH, LOGISTIC, TANH, QUANTIZE int8 -> int8: int8 in
    and out of the same shape; LOGISTIC outputs scale 1/256 zero point -128, TANH 1/128 and
    0; RELU6 keeps its input's quantization (TFLM's int8 RELU6 only clamps). All but
    HARD_SWISH and QUANTIZE also 16x8 (_check_pointwise_s16)."""
    if len(op.inputs) != 1 or op.inputs[0] < 0:
        return ["needs exactly one input"]
    if _dtype(graph, op.outputs[0]) == INT16:
        return _check_pointwise_s16(graph, op)
    reasons = _int8_activations(graph, op, op.inputs)
    if reasons:
        return reasons
    reasons = _fixed_output(op, graph.tensors[op.outputs[0]])
    if reasons:
        return reasons
    if op.kind == "RELU6":
        reasons = _same_quantization(graph, op.inputs[0], op.outputs[0])
        if reasons:
            return reasons
    try:
        _lut(graph, op)
    except ModelError as e:
        return [str(e)]
    return []


def _const_ints(graph, i):
    t = graph.tensors[i] if i >= 0 else None
    if t is None or not t.is_const or np.dtype(t.dtype) not in (np.dtype(np.int32),
                                                                np.dtype(np.int64)):
        return None
    return [int(v) for v in np.asarray(t.data).reshape(-1)]


def _check_pad(graph, op):
    """PAD / PADV2: int8 (or 16x8 int16) of rank <= 4, constant non-negative int32 paddings
    [rank, 2], the same quantization in and out; PADV2's pad value a constant int8 scalar of
    the output's quantization (int16 pads with 0: TFLM's int16 PAD with zero point 0)."""
    if len(op.inputs) < 2:
        return ["needs input and paddings"]
    reasons = _activations(graph, op, op.inputs[:1])
    if not reasons and _dtype(graph, op.outputs[0]) == INT16 and len(op.inputs) > 2 \
            and op.inputs[2] >= 0:
        reasons = ["an int16 PADV2 (a pad value of its own) is not supported; use PAD"]
    if reasons:
        return reasons
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    pads = _const_ints(graph, op.inputs[1])
    if len(x.shape) > 4 or pads is None or len(pads) != 2 * len(x.shape) or min(pads + [0]) < 0:
        return ["paddings must be a constant non-negative int32 [rank, 2] tensor, rank <= 4"]
    reasons = _same_quantization(graph, op.inputs[0], op.outputs[0])
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        c = graph.tensors[op.inputs[2]]
        if not c.is_const or np.dtype(c.dtype) != INT8 or c.data.size != 1:
            reasons.append("pad value must be a constant int8 scalar")
        elif c.scales is not None and (c.zero_point != y.zero_point
                                       or abs(c.scale - y.scale) > 1e-6 * y.scale):
            reasons.append("pad value must have the output's quantization")
    return reasons


def _mean_axes(graph, op):
    axes = _const_ints(graph, op.inputs[1]) if len(op.inputs) > 1 else None
    rank = len(graph.tensors[op.inputs[0]].shape)
    return None if axes is None else sorted(a % rank for a in axes)


_MAX_MEAN_S16 = 65535


def _check_mean(graph, op):
    """MEAN: int8 NHWC input reduced over height and width (axes 1 and 2, constant), with
    or without keep_dims, into an int8 output; height * width <= 2^23 (or 16x8 int16 in and
    out, height * width <= 65535: int16 values summed in int32)."""
    if len(op.inputs) != 2:
        return ["needs input and axis"]
    reasons = _activations(graph, op, op.inputs[:1])
    if reasons:
        return reasons
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if len(x.shape) != 4 or _mean_axes(graph, op) != [1, 2]:
        return ["only the mean over axes 1 and 2 of a rank-4 tensor is supported"]
    n, h, w, c = x.shape
    if h * w > 1 << 23:
        return ["height * width %d is above 2^23" % (h * w)]
    if _is_16x8(graph, op) and h * w > _MAX_MEAN_S16:
        return ["height * width %d is above 65535 (int16 values summed in int32)" % (h * w)]
    try:
        lower.mean_params(x.scale, y.scale, h * w)
    except ModelError as e:
        return [str(e)]
    return []


def _check_concatenation(graph, op):
    """CONCATENATION: int8 (or 16x8 int16) inputs of rank <= 4 with the output's
    quantization (TFLM copies bytes, it does not rescale), along any axis, no fused
    activation."""
    reasons = _activations(graph, op, op.inputs)
    if reasons or not op.inputs:
        return reasons or ["needs at least one input"]
    first = graph.tensors[op.inputs[0]]
    rank = len(first.shape)
    axis = op.options.get("axis", 0)
    if rank > 4 or not -rank <= axis < rank:
        return ["axis %d of a rank-%d input is not supported (rank <= 4)" % (axis, rank)]
    axis %= rank
    if op.options.get("activation", "NONE") != "NONE":
        return ["fused activation %s is not supported" % op.options["activation"]]
    for i in op.inputs:
        x = graph.tensors[i]
        if len(x.shape) != rank or any(x.shape[k] != first.shape[k] for k in range(rank)
                                       if k != axis):
            return ["input shapes %s and %s differ off axis %d" % (first.shape, x.shape, axis)]
        reasons += _same_quantization(graph, i, op.outputs[0])
    return reasons


def _perm(graph, op):
    """TRANSPOSE's constant permutation, or None."""
    return _const_ints(graph, op.inputs[1])


def _check_transpose(graph, op):
    """TRANSPOSE: int8 or int16 (16x8) of rank <= 4, a constant int32 permutation of its
    dimensions, the same quantization in and out (TFLM's kernel moves bytes); int16 moves
    byte pairs, so at most 4 loops must remain once adjacent dimensions merge."""
    int16 = _is_16x8(graph, op)
    reasons = (_int16_activations if int16 else _int8_activations)(graph, op, op.inputs[:1])
    if reasons:
        return reasons
    x = graph.tensors[op.inputs[0]]
    perm = _perm(graph, op)
    if len(x.shape) > 4 or perm is None or sorted(perm) != list(range(len(x.shape))):
        return ["permutation must be a constant int32 permutation of 0..rank-1, rank <= 4 (got "
                "%s for rank %d)" % (perm, len(x.shape))]
    if len(_transpose_loops(x, perm)[0]) > 4:
        return ["an int16 TRANSPOSE moving all 4 dimensions is not supported (the byte copy "
                "has 4 loops); use int8 or a lower rank"]
    return _same_quantization(graph, op.inputs[0], op.outputs[0])


# --- output shapes: what an op's inputs and options imply (checked once its constraint
# holds, so the inputs are what the family expects) ------------------------------------

def _shape(graph, i):
    return tuple(int(d) for d in graph.tensors[i].shape)


def _same_shape(graph, op):
    return _shape(graph, op.inputs[0])


def _fully_connected_shape(graph, op):
    """TFLite's: the input's rows by out_depth, or with keep_num_dims the input's shape with
    its last dimension out_depth."""
    out_depth, in_depth = graph.tensors[op.inputs[1]].shape
    if op.options.get("keep_num_dims"):
        return _shape(graph, op.inputs[0])[:-1] + (int(out_depth),)
    return (_count(graph, op.inputs[0]) // in_depth, int(out_depth))


def _window_shape(graph, op, k_h, k_w, channels, dilated=True):
    out_h, out_w, _, _ = _window_geometry(graph, op, k_h, k_w, dilated)
    return (_shape(graph, op.inputs[0])[0], out_h, out_w, int(channels))


def _conv_shape(graph, op):
    out_c, k_h, k_w, _ = graph.tensors[op.inputs[1]].shape
    return _window_shape(graph, op, k_h, k_w, out_c)


def _depthwise_shape(graph, op):
    _, k_h, k_w, out_c = graph.tensors[op.inputs[1]].shape
    return _window_shape(graph, op, k_h, k_w, out_c)


def _pool_shape(graph, op):
    return _window_shape(graph, op, op.options["filter_h"], op.options["filter_w"],
                         _shape(graph, op.inputs[0])[3], dilated=False)


def _broadcast_shape(graph, op):
    return tuple(np.broadcast_shapes(_shape(graph, op.inputs[0]), _shape(graph, op.inputs[1])))


def _pad_shape(graph, op):
    pads = _const_ints(graph, op.inputs[1])
    return tuple(d + pads[2 * k] + pads[2 * k + 1] for k, d in enumerate(_shape(graph, op.inputs[0])))


def _mean_shape(graph, op):
    n, _, _, c = _shape(graph, op.inputs[0])
    return (n, 1, 1, c) if op.options.get("keep_dims") else (n, c)


def _concatenation_shape(graph, op):
    first = _shape(graph, op.inputs[0])
    axis = op.options.get("axis", 0) % len(first)
    return first[:axis] + (sum(_shape(graph, i)[axis] for i in op.inputs),) + first[axis + 1:]


def _transpose_shape(graph, op):
    x = _shape(graph, op.inputs[0])
    return tuple(x[k] for k in _perm(graph, op))


def _shape_problems(graph):
    """(op, reason) for every op whose constraint holds but whose output shape is not what
    its inputs and options imply (SHAPES): a blob from it would fail on the board."""
    problems = []
    for op in graph.ops:
        implied = SHAPES.get(op.kind)
        if implied is None or CONSTRAINTS[op.kind](graph, op):
            continue
        want, got = implied(graph, op), _shape(graph, op.outputs[0])
        if want == got and min(want + (1,)) >= 1:
            continue
        inputs = ["%r %s" % (graph.tensors[i].name, _shape(graph, i))
                  for i in op.inputs if i >= 0 and not graph.tensors[i].is_const]
        problems.append((op, "output tensor %r has shape %s, but its input%s %s impl%s %s"
                         % (graph.tensors[op.outputs[0]].name, got, "s" if len(inputs) > 1
                            else "", " and ".join(inputs), "y" if len(inputs) > 1 else "ies",
                            want)))
    return problems


# Inputs every op of a kind the SDK reads must have (present, not -1) and that the compiler
# and rewrite.py read without looking; every one of them has exactly one output.
_ARITY = {name: op.arity for name, op in ops.OPS.items()}


def _structure_problems(graph):
    """(op, reason) for every op of a kind the compiler reads that lacks an input it needs or
    has other than one output (a damaged or hand-made model)."""
    problems = []
    for op in graph.ops:
        need = _ARITY.get(op.kind)
        if need is None:
            continue
        if len(op.inputs) < need or min(op.inputs[:need]) < 0:
            problems.append((op, "needs %d inputs, has %d" % (
                need, sum(1 for i in op.inputs if i >= 0))))
        elif len(op.outputs) != 1:
            problems.append((op, "needs one output, has %d" % len(op.outputs)))
        elif op.kind == "CONCATENATION" and min(op.inputs) < 0:
            problems.append((op, "an input is missing (-1)"))
    return problems


def check_structure(graph):
    """Raise UnsupportedOpError if an op lacks the inputs or output its kind needs, naming
    those ops and every other unsupported one; runs before any rewrite looks at the ops."""
    malformed = _structure_problems(graph)
    if malformed:
        skip = {id(op) for op, _ in malformed}
        problems = [(op.index, op.kind, reason) for op, reason in malformed]
        problems += _problems(graph, skip)
        raise UnsupportedOpError(sorted(problems, key=lambda p: p[0]), graph.name, SUPPORTED_HINT)
    return graph


def _problems(graph, skip=()):
    problems = []
    for op in graph.ops:
        if id(op) in skip:
            continue
        if op.kind not in CONSTRAINTS:
            problems.append((op.index, op.kind, "op not supported"))
            continue
        shapes = " ".join(str(graph.tensors[i].shape) for i in op.inputs if i >= 0)
        for reason in CONSTRAINTS[op.kind](graph, op):
            problems.append((op.index, op.kind, "%s [inputs %s]" % (reason, shapes)))
    return problems


def _graph_problems(graph):
    """Ops reading activations nothing writes before them: a blob from them would fail on the
    board."""
    problems = []
    written = set(graph.inputs)
    for op in graph.ops:
        for i in op.inputs:
            if i >= 0 and not graph.tensors[i].is_const and i not in written:
                problems.append((op.index, op.kind, "reads tensor %r, which no earlier op writes "
                                 "and is not a model input" % graph.tensors[i].name))
        written.update(op.outputs)
    for i in graph.outputs:
        if i not in written and not graph.tensors[i].is_const:
            problems.append((-1, "io", "output %r is written by no op" % graph.tensors[i].name))
    return problems


def check(graph):
    """Raise ModelError (one line) for an op whose output shape is not what its inputs
    imply, else UnsupportedOpError listing every op the compiler cannot take, with the
    reason."""
    shapes = _shape_problems(graph)
    if shapes:
        op, reason = shapes[0]
        more = ", ".join("#%d %s" % (o.index, o.kind) for o, _ in shapes[1:])
        raise ModelError("%s: op #%d %s: %s: the model is inconsistent; export it again%s"
                         % (graph.name, op.index, op.kind, reason,
                            " (the same for op %s)" % more if more else ""))
    problems = _problems(graph) + _graph_problems(graph)
    for i in graph.inputs + graph.outputs:
        if len(graph.tensors[i].shape) > blob.MAX_RANK:
            problems.append((-1, "io", "tensor %r has rank > %d" % (graph.tensors[i].name, blob.MAX_RANK)))
    if problems:
        raise UnsupportedOpError(problems, graph.name, SUPPORTED_HINT)
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
    int16 = _is_16x8(g, op)
    p = lower.fully_connected_params(x.scale, x.zero_point, w.scales, y.scale, y.zero_point,
                                     op.options.get("activation", "NONE"), out_depth, int16)
    # per-tensor int8 weights: one pair, not one per row (the 16x8 kernel takes one per row)
    rows = out_depth if len(w.scales) > 1 or int16 else 1
    inputs = [lw.tensor(op.inputs[0]), lw.tensor(op.inputs[1]), lw.tensor(bias),
              lw.const(p["mult"][:rows], np.int32), lw.const(p["shift"][:rows], np.int32)]
    if int16:
        lw.emit("FULLY_CONNECTED_S16", inputs, op.outputs, batches=x.nbytes // 2 // in_depth,
                in_depth=in_depth, out_depth=out_depth, act_min=p["act_min"],
                act_max=p["act_max"])
        return
    lw.emit("FULLY_CONNECTED", inputs, op.outputs, batches=x.nbytes // in_depth,
            in_depth=in_depth, out_depth=out_depth, input_offset=p["input_offset"],
            output_offset=p["output_offset"], act_min=p["act_min"], act_max=p["act_max"])


def _lower_softmax(lw, op):
    x, y = lw.graph.tensors[op.inputs[0]], lw.graph.tensors[op.outputs[0]]
    depth = x.shape[-1]
    if _is_16x8(lw.graph, op):
        mult, shift = lower.softmax_s16_params(x.scale, op.options.get("beta", 1.0), y.scale,
                                               y.zero_point)
        exp_lut, recip_lut = lower.softmax_s16_luts()
        lw.emit("SOFTMAX_S16", [lw.tensor(op.inputs[0]), lw.const(exp_lut, np.int16),
                                lw.const(recip_lut, np.int16)], op.outputs,
                rows=x.nbytes // 2 // depth, depth=depth, input_multiplier=mult, input_shift=shift)
        return
    mult, shift, diff_min = lower.softmax_params(x.scale, op.options.get("beta", 1.0))
    lw.emit("SOFTMAX", [lw.tensor(op.inputs[0])], op.outputs, rows=x.nbytes // depth, depth=depth,
            input_multiplier=mult, input_left_shift=shift, diff_min=diff_min)


def _lower_edge(kind):
    def lower_op(lw, op):
        count = int(np.prod(lw.graph.tensors[op.inputs[0]].shape, dtype=np.int64))
        lw.emit(kind, [lw.tensor(op.inputs[0])], op.outputs, count=count)
    return lower_op


def _lower_conv(lw, op):
    g = lw.graph
    x, w, y = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    bias = op.inputs[2] if len(op.inputs) > 2 else -1
    o = op.options
    batches, in_h, in_w, in_c = x.shape
    if op.kind == "CONV_2D":
        out_c, k_h, k_w, _ = w.shape
        channel_param = dict(out_c=out_c)
    else:
        _, k_h, k_w, out_c = w.shape
        channel_param = dict(depth_multiplier=out_c // in_c)
    out_h, out_w, pad_h, pad_w = _window_geometry(g, op, k_h, k_w)
    int16 = _is_16x8(g, op)
    p = lower.conv_params(x.scale, x.zero_point, w.scales, y.scale, y.zero_point,
                          o.get("activation", "NONE"), out_c, int16)
    inputs = [lw.tensor(op.inputs[0]), lw.tensor(op.inputs[1]), lw.tensor(bias),
              lw.const(p["mult"], np.int32), lw.const(p["shift"], np.int32)]
    lw.emit(_kernel(op, int16), inputs, op.outputs, batches=batches, in_h=in_h, in_w=in_w, in_c=in_c,
            out_h=out_h, out_w=out_w, k_h=k_h, k_w=k_w, stride_h=o["stride_h"],
            stride_w=o["stride_w"], dilation_h=o["dilation_h"], dilation_w=o["dilation_w"],
            pad_h=pad_h, pad_w=pad_w, input_offset=p["input_offset"],
            output_offset=p["output_offset"], act_min=p["act_min"], act_max=p["act_max"],
            **channel_param)


def _lower_pool(lw, op):
    g = lw.graph
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    o = op.options
    batches, in_h, in_w, channels = x.shape
    k_h, k_w = o["filter_h"], o["filter_w"]
    out_h, out_w, pad_h, pad_w = _window_geometry(g, op, k_h, k_w, dilated=False)
    int16 = _is_16x8(g, op)
    limits = (lower.INT16_MIN, lower.INT16_MAX) if int16 else (lower.INT8_MIN, lower.INT8_MAX)
    act_min, act_max = lower.activation_range(o.get("activation", "NONE"), y.scale, y.zero_point,
                                              *limits)
    lw.emit(_kernel(op, int16), [lw.tensor(op.inputs[0])], op.outputs, batches=batches, in_h=in_h,
            in_w=in_w, channels=channels, out_h=out_h, out_w=out_w, k_h=k_h, k_w=k_w,
            stride_h=o["stride_h"], stride_w=o["stride_w"], pad_h=pad_h, pad_w=pad_w,
            act_min=act_min, act_max=act_max)


def _lower_elementwise(lw, op):
    g = lw.graph
    x1, x2, y = (g.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    int16 = _dtype(g, op.outputs[0]) == INT16
    p = _ELEMENTWISE_PARAMS[op.kind](x1.scale, x1.zero_point, x2.scale, x2.zero_point, y.scale,
                                     y.zero_point, op.options.get("activation", "NONE"), int16)
    dims = [1] * (4 - len(y.shape)) + list(y.shape)
    s1 = lower.broadcast_strides(x1.shape, y.shape)
    s2 = lower.broadcast_strides(x2.shape, y.shape)
    for k in range(4):
        p["d%d" % k], p["in1_s%d" % k], p["in2_s%d" % k] = dims[k], s1[k], s2[k]
    lw.emit(_kernel(op, int16), [lw.tensor(op.inputs[0]), lw.tensor(op.inputs[1])], op.outputs,
            **p)


def _lower_pointwise(lw, op):
    x, y = lw.graph.tensors[op.inputs[0]], lw.graph.tensors[op.outputs[0]]
    if _dtype(lw.graph, op.outputs[0]) == INT16 and op.kind in _RESCALE_S16:
        lw.emit("RESCALE_S16", [lw.tensor(op.inputs[0])], op.outputs, count=x.nbytes // 2,
                **_rescale_s16(lw.graph, op))
        return
    if _dtype(lw.graph, op.outputs[0]) == INT16:
        mult, shift = lower.sigmoid_s16_params(x.scale, y.scale, op.kind == "TANH")
        table = np.array(tables16.SIGMOID_U16, np.uint16).view(np.int16)
        lw.emit(_kernel(op, True), [lw.tensor(op.inputs[0]), lw.const(table, np.int16)],
                op.outputs, count=x.nbytes // 2, input_multiplier=mult, input_left_shift=shift)
        return
    lw.emit("LUT", [lw.tensor(op.inputs[0]), lw.const(_lut(lw.graph, op), np.int8)], op.outputs,
            count=lw.graph.tensors[op.inputs[0]].nbytes)


def _lower_quantize(lw, op):
    src, dst = _dtype(lw.graph, op.inputs[0]), _dtype(lw.graph, op.outputs[0])
    x, y = lw.graph.tensors[op.inputs[0]], lw.graph.tensors[op.outputs[0]]
    count = x.nbytes // src.itemsize
    if src == INT8 and dst == INT8:
        _lower_pointwise(lw, op)
    elif src == INT8:
        table = lower.requantize_s8_s16_lut(x.scale, x.zero_point, y.scale)
        lw.emit("LUT_S8_S16", [lw.tensor(op.inputs[0]), lw.const(table, np.int16)], op.outputs,
                count=count)
    elif src == INT16 and dst in (INT8, INT16):
        mult, shift = lower.requantize_params(x.scale, y.scale)
        if dst == INT8:
            lw.emit("REQUANTIZE_S16_S8", [lw.tensor(op.inputs[0])], op.outputs, count=count,
                    multiplier=mult, shift=shift, output_offset=y.zero_point)
        else:  # int16 -> int16: one rescale for both signs, the int16 clamp
            lw.emit("RESCALE_S16", [lw.tensor(op.inputs[0])], op.outputs, count=count,
                    pos_multiplier=mult, pos_shift=shift, neg_multiplier=mult, neg_shift=shift,
                    act_min=lower.INT16_MIN, act_max=lower.INT16_MAX)
    else:
        _lower_edge("QUANTIZE_S16" if _dtype(lw.graph, op.outputs[0]) == INT16 else "QUANTIZE")(lw, op)


def _lower_dequantize(lw, op):
    _lower_edge("DEQUANTIZE_S16" if _dtype(lw.graph, op.inputs[0]) == INT16 else "DEQUANTIZE")(lw, op)


def _strides4(shape):
    """Rank-4 shape (1s in front) and its contiguous element strides."""
    shape = [1] * (4 - len(shape)) + list(shape)
    strides, step = [0] * 4, 1
    for k in range(3, -1, -1):
        strides[k], step = step, step * shape[k]
    return shape, strides


def _coalesce(dims, in_strides, out_strides):
    """The same copy with fewer, longer loops: a dimension contiguous with the one inside it
    in both input and output merges into it (PAD's rows of 3 channels become rows of
    width x 3 bytes); size-1 ones go."""
    loops = []  # (d, in stride, out stride), innermost first
    for d, a, b in reversed(list(zip(dims, in_strides, out_strides))):
        if d == 1:
            continue
        if loops and a == loops[-1][0] * loops[-1][1] and b == loops[-1][0] * loops[-1][2]:
            loops[-1] = (loops[-1][0] * d, loops[-1][1], loops[-1][2])
        else:
            loops.append((d, a, b))
    loops = [(1, 0, 0)] * (4 - len(loops)) + loops[::-1]  # more than 4: the caller refuses
    return [list(v) for v in zip(*loops)]


def _emit_copy(lw, op, src, out_offset, out_strides, fill=0, fill_value=0, in_view=None):
    """COPY src (read as `in_view`: rank-4 dims and strides in bytes, default its own
    layout) into the output at out_offset with out_strides (in elements without `in_view`,
    in bytes with it). An int16 element is a trailing pair of bytes: innermost, contiguous
    in both, it merges into the rows (PAD's and CONCATENATION's stay within 4 loops)."""
    if in_view is None:
        dims, in_strides = _strides4(lw.graph.tensors[src].shape)
        size = np.dtype(lw.graph.tensors[src].dtype).itemsize
        if size > 1:
            dims, in_strides = dims + [size], [s * size for s in in_strides] + [1]
            out_strides, out_offset = [s * size for s in out_strides] + [1], out_offset * size
    else:
        dims, in_strides = in_view
    dims, in_strides, out_strides = _coalesce(dims, in_strides, out_strides)
    assert len(dims) == 4, "a byte copy of more than 4 loops"
    params = dict(out_offset=out_offset, fill=fill, fill_value=fill_value)
    for k in range(4):
        params["d%d" % k], params["in_s%d" % k] = dims[k], in_strides[k]
        params["out_s%d" % k] = out_strides[k]
    lw.emit("COPY", [lw.tensor(src)], op.outputs, **params)


def _lower_pad(lw, op):
    g = lw.graph
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    pads = _const_ints(g, op.inputs[1])
    before = [0] * (4 - len(x.shape)) + pads[0::2]
    _, out_strides = _strides4(y.shape)
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = int(np.asarray(g.tensors[op.inputs[2]].data).reshape(-1)[0])
    else:
        value = y.zero_point
    _emit_copy(lw, op, op.inputs[0], sum(b * s for b, s in zip(before, out_strides)),
               out_strides, fill=1, fill_value=value)


def _lower_concatenation(lw, op):
    y = lw.graph.tensors[op.outputs[0]]
    axis = op.options.get("axis", 0) % len(y.shape)
    _, out_strides = _strides4(y.shape)
    step = out_strides[axis + 4 - len(y.shape)]
    position = 0
    for i in op.inputs:
        _emit_copy(lw, op, i, position * step, out_strides)
        position += lw.graph.tensors[i].shape[axis]


def _contiguous(shape):
    strides, step = [0] * len(shape), 1
    for k in range(len(shape) - 1, -1, -1):
        strides[k], step = step, step * shape[k]
    return strides


def _transpose_loops(x, perm):
    """The byte copy of TRANSPOSE x by perm, coalesced: (dims, in strides, out strides), as
    few loops as the layout allows (an int16 element is a trailing pair of bytes)."""
    shape, perm = list(x.shape), list(perm)
    if np.dtype(x.dtype).itemsize == 2:
        shape, perm = shape + [2], perm + [len(perm)]
    x_strides = _contiguous(shape)
    dims = [shape[k] for k in perm]
    in_strides, out_strides = [x_strides[k] for k in perm], _contiguous(dims)
    # The copy's loops may run in any order: read the input's rows innermost when they are
    # longer than the output's (NCHW -> NHWC: 96 pixels a row rather than 3 channels).
    j = perm.index(len(perm) - 1)
    if dims[j] > dims[-1]:
        for v in (dims, in_strides, out_strides):
            v[j], v[-1] = v[-1], v[j]
    return _coalesce(dims, in_strides, out_strides)


def _lower_transpose(lw, op):
    """A COPY that walks the output in order and reads the input with permuted strides; an
    alias (no kernel) when the permutation moves only size-1 dimensions."""
    x = lw.graph.tensors[op.inputs[0]]
    perm = _perm(lw.graph, op)
    moved = [k for k in perm if x.shape[k] != 1]
    if moved == sorted(moved):  # the bytes are already in the output's order
        _lower_reshape(lw, op)
        return
    dims, in_strides, out_strides = _transpose_loops(x, perm)
    _emit_copy(lw, op, op.inputs[0], 0, out_strides, in_view=(dims, in_strides))


def _lower_mean(lw, op):
    x, y = lw.graph.tensors[op.inputs[0]], lw.graph.tensors[op.outputs[0]]
    n, h, w, c = x.shape
    mult, shift = lower.mean_params(x.scale, y.scale, h * w)
    if _is_16x8(lw.graph, op):
        lw.emit("MEAN_S16", [lw.tensor(op.inputs[0])], op.outputs, batches=n, in_h=h, in_w=w,
                channels=c, multiplier=mult, shift=shift)
        return
    lw.emit("MEAN", [lw.tensor(op.inputs[0])], op.outputs, batches=n, in_h=h, in_w=w,
            channels=c, input_offset=-x.zero_point, multiplier=mult, shift=shift,
            output_offset=y.zero_point)


def _lower_reshape(lw, op):
    """An alias: the output shares the input's bytes, no kernel runs."""
    lw.alias[op.outputs[0]] = op.inputs[0]
    lw.tensor(op.outputs[0])


def _kernel(op, int16=False):
    """The blob kernel of an op that lowers to one kernel (its 16x8 twin with `int16`)."""
    kernels = ops.OPS[op.kind].kernels
    return kernels[1] if int16 else kernels[0]


# How the compiler checks and lowers each family of ops (ops.Op.lowering): the
# constraint returns the reasons an op is unsupported, the lowering emits its kernels, the
# shape is the output shape its inputs and options imply.
FAMILIES = {
    "fully_connected": (_check_fully_connected, _lower_fully_connected, _fully_connected_shape),
    "softmax": (_check_softmax, _lower_softmax, _same_shape),
    "reshape": (_check_reshape, _lower_reshape, None),  # any shape of the input's size
    "quantize": (_check_quantize, _lower_quantize, _same_shape),
    "dequantize": (_check_dequantize, _lower_dequantize, _same_shape),
    "conv_2d": (_check_conv_2d, _lower_conv, _conv_shape),
    "depthwise_conv_2d": (_check_depthwise_conv_2d, _lower_conv, _depthwise_shape),
    "pool": (_check_pool_2d, _lower_pool, _pool_shape),
    "elementwise": (_check_elementwise, _lower_elementwise, _broadcast_shape),
    "pointwise": (_check_pointwise, _lower_pointwise, _same_shape),
    "pad": (_check_pad, _lower_pad, _pad_shape),
    "mean": (_check_mean, _lower_mean, _mean_shape),
    "concatenation": (_check_concatenation, _lower_concatenation, _concatenation_shape),
    "transpose": (_check_transpose, _lower_transpose, _transpose_shape),
}
CONSTRAINTS = {name: FAMILIES[op.lowering][0] for name, op in ops.OPS.items() if op.lowering}
#: op -> the output shape its inputs and options imply (None: any of the input's size)
SHAPES = {name: FAMILIES[op.lowering][2] for name, op in ops.OPS.items()
          if op.lowering and FAMILIES[op.lowering][2]}
LOWERINGS = {name: FAMILIES[op.lowering][1] for name, op in ops.OPS.items() if op.lowering}


def lower_graph(graph):
    lw = _Lowering(graph)
    for t in graph.inputs:
        lw.tensor(t)
    for op in graph.ops:
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
    """Compile an int8 Graph into blob bytes (deterministic for the same input)."""
    if not graph.ops:
        raise ModelError("%s has no op a board runs (an empty graph): nothing to compile"
                         % graph.name)
    check_structure(graph)
    try:
        graph = rewrite.simplify(graph)  # fold what converters leave behind before judging ops
    except (IndexError, ValueError, TypeError, ZeroDivisionError) as e:
        # A pattern whose tensors contradict each other (ranks, shapes): rewrite.py matches
        # on well-formed models; say the model is inconsistent, keep the cause chained.
        raise ModelError("%s is inconsistent (%s: %s while simplifying the graph); re-export "
                         "the model" % (graph.name, type(e).__name__, e)) from e
    check(graph)
    lw = lower_graph(graph)
    arena, bound, constants = _place(lw)
    records = [{k: v for k, v in r.items() if k != "graph_tensor"} for r in lw.records]
    if len(records) > ops.MAX_TENSORS:
        raise ModelError("%s needs %d tensors, a blob holds at most %d; a model for a board is far "
                         "smaller" % (graph.name, len(records), ops.MAX_TENSORS))
    try:
        data = blob.pack(arena, records, [lw.index[t] for t in graph.inputs],
                         [lw.index[t] for t in graph.outputs], lw.ops, constants)
    except BlobFormatError as e:  # too many tensors or ops, an arena beyond 4 GB...
        raise ModelError("%s: %s; a model for a board is far smaller" % (graph.name, e)) from e
    return Compiled(data, arena, bound, len(constants), len(lw.ops))


def compile_file(path):
    """Compile an int8 .tflite file (float models go through npu_sdk.quantize first)."""
    graph = tflite.load(path)
    if is_float_model(graph):
        raise ModelError("%s is a float model: quantize it first with `npu compile %s --calib DATA.npy` "
                         "(or npu_sdk.quantize in Python)" % (path, path))
    return compile_graph(graph)
