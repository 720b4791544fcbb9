"""The 16x8 kernels' checks and calls (int16 activations; the *_S16 opcodes but the pools'):
npufw/interp.py's Model._prepare hands them here. A module of its own, imported only when a
model has one, so that a board holding an int8 model keeps the heap this code would take
(as npufw/kernels16.py for the kernels)."""
from . import opcodes
from .interp import _FLOAT32, _INT8, _INT16, _INT32, _INT64, _check, _check_window, _kernel16

_ACT16 = "bad activation range"


def _act16(what, amin, amax):
    _check(-32768 <= amin <= amax <= 32767, what, _ACT16)


def prepare(m, npu, op, what):
    """The kernel call of a 16x8 op of Model m, its tensors checked against its parameters."""
    p = op.params
    code = op.opcode
    t = m._tensor
    if code == opcodes.FULLY_CONNECTED_S16:
        batches, in_d, out_d, amin, amax = p
        _act16(what, amin, amax)
        _check(0 < in_d < 1 << 24, what, "bad depth")
        return _kernel16(npu, "fully_connected_s16"), (
            t(op.inputs[0], _INT16, 2 * batches * in_d, what),
            t(op.inputs[1], _INT8, out_d * in_d, what),
            t(op.inputs[2], _INT64, 8 * out_d, what),
            t(op.outputs[0], _INT16, 2 * batches * out_d, what),
            t(op.inputs[3], _INT32, 4 * out_d, what),
            t(op.inputs[4], _INT32, 4 * out_d, what),
            batches, in_d, out_d, amin, amax)
    if code == opcodes.CONV_2D_S16 or code == opcodes.DEPTHWISE_CONV_2D_S16:
        return _conv(m, npu, op, what)
    if code == opcodes.ADD_S16 or code == opcodes.MUL_S16:
        return _elementwise(m, npu, op, what)
    if code == opcodes.QUANTIZE_S16:
        n, q = p[0], m.blob.tensors[op.outputs[0]]
        return _kernel16(npu, "quantize_s16"), (t(op.inputs[0], _FLOAT32, 4 * n, what),
                                                t(op.outputs[0], _INT16, 2 * n, what),
                                                n, q.scale, q.zero_point)
    if code == opcodes.DEQUANTIZE_S16:
        n, q = p[0], m.blob.tensors[op.inputs[0]]
        return _kernel16(npu, "dequantize_s16"), (t(op.inputs[0], _INT16, 2 * n, what),
                                                  t(op.outputs[0], _FLOAT32, 4 * n, what),
                                                  n, q.scale, q.zero_point)
    if code == opcodes.LUT_S8_S16:
        n = p[0]
        _check(n >= 1, what, "bad count")
        return _kernel16(npu, "lut_s8_s16"), (t(op.inputs[0], _INT8, n, what),
                                              t(op.inputs[1], _INT16, 512, what),
                                              t(op.outputs[0], _INT16, 2 * n, what), n)
    if code == opcodes.REQUANTIZE_S16_S8:
        n, _, shift, out_off = p
        _check(n >= 1 and -31 <= shift <= 31 and -128 <= out_off <= 127, what,
               "bad count, shift or zero point")
        return _kernel16(npu, "requantize_s16_s8"), (
            t(op.inputs[0], _INT16, 2 * n, what), t(op.outputs[0], _INT8, n, what)) + tuple(p)
    if code == opcodes.RESCALE_S16:
        n, _, ps, _, ns, amin, amax = p
        _check(n >= 1 and -31 <= ps <= 31 and -31 <= ns <= 31, what, "bad count or shift")
        _act16(what, amin, amax)
        return _kernel16(npu, "rescale_s16"), (
            t(op.inputs[0], _INT16, 2 * n, what), t(op.outputs[0], _INT16, 2 * n, what)) + tuple(p)
    if code == opcodes.SOFTMAX_S16:
        rows, depth, _, shift = p
        _check(rows >= 1 and 1 <= depth <= 65535 and -31 <= shift <= 31, what,
               "bad softmax shape or shift")
        n = rows * depth
        return _kernel16(npu, "softmax_s16"), (
            t(op.inputs[0], _INT16, 2 * n, what), t(op.outputs[0], _INT16, 2 * n, what),
            t(op.inputs[1], _INT16, 1026, what), t(op.inputs[2], _INT16, 1026, what)) + tuple(p)
    if code == opcodes.LOGISTIC_S16 or code == opcodes.TANH_S16:
        n, mult, left_shift = p
        _check(n >= 1 and 1 <= mult <= 32767 and 0 <= left_shift <= 30, what,
               "bad count or input rescaling")
        return _kernel16(npu, "logistic_s16" if code == opcodes.LOGISTIC_S16 else "tanh_s16"), (
            t(op.inputs[0], _INT16, 2 * n, what), t(op.inputs[1], _INT16, 512, what),
            t(op.outputs[0], _INT16, 2 * n, what), n, mult, left_shift)
    # MEAN_S16
    batches, in_h, in_w, channels, _, shift = p
    _check(min(batches, in_h, in_w, channels) >= 1 and in_h * in_w <= 65535, what,
           "bad mean shape")
    _check(-31 <= shift <= 31, what, "shift out of range")
    return _kernel16(npu, "mean_s16"), (
        t(op.inputs[0], _INT16, 2 * batches * in_h * in_w * channels, what),
        t(op.outputs[0], _INT16, 2 * batches * channels, what)) + tuple(p)


def _conv(m, npu, op, what):
    p = op.params
    (batches, in_h, in_w, in_c, out_h, out_w, channels, k_h, k_w, stride_h, stride_w,
     dil_h, dil_w, pad_h, pad_w, amin, amax) = p
    _check(min(batches, in_c, channels) >= 1, what, "bad shape")
    _check_window(what, in_h, out_h, k_h, stride_h, dil_h, pad_h)
    _check_window(what, in_w, out_w, k_w, stride_w, dil_w, pad_w)
    _act16(what, amin, amax)
    if op.opcode == opcodes.CONV_2D_S16:
        out_c = channels
        _check(k_h * k_w * in_c <= opcodes.MAX_MACS, what, "filter too large")
        w_size, fn = out_c * k_h * k_w * in_c, _kernel16(npu, "conv2d_s16")
    else:
        out_c = in_c * channels
        _check(k_h * k_w <= opcodes.MAX_MACS, what, "filter too large")
        w_size, fn = k_h * k_w * out_c, _kernel16(npu, "depthwise_conv2d_s16")
    t = m._tensor
    return fn, (t(op.inputs[0], _INT16, 2 * batches * in_h * in_w * in_c, what),
                t(op.inputs[1], _INT8, w_size, what),
                t(op.inputs[2], _INT64, 8 * out_c, what),
                t(op.outputs[0], _INT16, 2 * batches * out_h * out_w * out_c, what),
                t(op.inputs[3], _INT32, 4 * out_c, what),
                t(op.inputs[4], _INT32, 4 * out_c, what)) + tuple(p)


def _elementwise(m, npu, op, what):
    """ADD_S16 / MUL_S16: the int8 ones' broadcast geometry, no offsets (zero points 0)."""
    p = op.params
    dims, s1, s2 = p[0:4], p[4:8], p[8:12]
    _check(min(dims) >= 1 and min(s1) >= 0 and min(s2) >= 0, what, "bad broadcast shape")
    add = op.opcode == opcodes.ADD_S16
    if add:
        left_shift, _, shift1, _, shift2, _, out_shift, amin, amax = p[12:]
        shifts = (shift1, shift2, out_shift)
    else:
        _, out_shift, amin, amax = p[12:]
        left_shift, shifts = 0, (out_shift,)
    _act16(what, amin, amax)
    _check(0 <= left_shift <= 15, what, "left_shift out of range")
    for sh in shifts:
        _check(-31 <= sh <= 31, what, "shift out of range")
    views = []
    for i, strides in ((op.inputs[0], s1), (op.inputs[1], s2)):
        _check(i >= 0, what, "missing input")
        extent = 1
        for d, s in zip(dims, strides):
            extent += (d - 1) * s
        _check(m.blob.tensors[i].dtype == _INT16 and m.blob.tensors[i].size >= 2 * extent, what,
               "input %d is not int16 of at least %d elements" % (i, extent))
        views.append(m.views[i])
    n = dims[0] * dims[1] * dims[2] * dims[3]
    return _kernel16(npu, "add_s16" if add else "mul_s16"), (
        views[0], views[1], m._tensor(op.outputs[0], _INT16, 2 * n, what)) + tuple(p)
