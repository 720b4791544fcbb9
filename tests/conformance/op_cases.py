"""Single-op int8 models for FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, the pools, ADD, MUL,
the pointwise activations and int8 QUANTIZE, MEAN, PAD/PADV2, CONCATENATION and TRANSPOSE
(and the 16x8 kernels), each
with inputs and the TFLite Micro output: the vectors test_ops_pipeline.py runs
through the whole stack (compiler -> blob -> firmware interpreter -> kernels).

Seeded; small enough that the MicroPython VM runs every case in a few seconds.
"""
import numpy as np

from npu_sdk import ops
from tools import tflite_build as tb

ACTIVATIONS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


class Case:
    def __init__(self, name, model, inputs):
        self.name, self.model, self.inputs = name, model, inputs
        self.expected = tb.run_tflm(model, inputs)  # int8, or int16 for 16x8


def _q(rng, lo=0.01, hi=0.1):
    return float(np.float32(rng.uniform(lo, hi))), int(rng.integers(-128, 128))


def _conv_output_scale(rng, in_scale, w_scales, taps):
    """An output scale that spreads the accumulators over int8 with some clipping."""
    return float(np.float32(float(np.max(w_scales)) * in_scale * 7000.0 * np.sqrt(taps)
                            / rng.uniform(30.0, 90.0)))


# (input NHWC, out_c or depth multiplier, kernel, stride, dilation, padding)
CONV_SHAPES = [
    ((1, 5, 5, 3), 4, (3, 3), (1, 1), (1, 1), "SAME"),
    ((1, 6, 7, 2), 3, (3, 2), (2, 2), (1, 1), "SAME"),
    ((2, 7, 6, 4), 5, (3, 3), (1, 2), (1, 1), "VALID"),
    ((1, 9, 8, 3), 2, (3, 3), (1, 1), (2, 3), "SAME"),
    ((1, 8, 8, 2), 3, (2, 4), (3, 2), (2, 1), "VALID"),
    ((1, 4, 4, 17), 6, (1, 1), (1, 1), (1, 1), "VALID"),
    ((1, 5, 6, 1), 2, (5, 5), (2, 1), (1, 1), "SAME"),
]


def conv_cases(depthwise):
    rng = np.random.default_rng(31 if depthwise else 30)
    cases = []
    for i, (shape, ch, k, stride, dil, padding) in enumerate(CONV_SHAPES):
        in_c = shape[3]
        if depthwise:
            ch = (1, 2, 3)[i % 3] if in_c < 17 else 1
            out_c = in_c * ch
            w = rng.integers(-127, 128, (1, k[0], k[1], out_c)).astype(np.int8)
            taps = k[0] * k[1]
        else:
            out_c = ch
            w = rng.integers(-127, 128, (out_c, k[0], k[1], in_c)).astype(np.int8)
            taps = k[0] * k[1] * in_c
        per_channel = i % 2 == 0
        w_scales = rng.uniform(0.002, 0.02, out_c if per_channel else 1).astype(np.float32)
        in_q = _q(rng)
        out_q = (_conv_output_scale(rng, in_q[0], w_scales, taps), int(rng.integers(-20, 21)))
        # The tflite-micro build segfaults in Prepare on DEPTHWISE_CONV_2D without a bias
        # (LiteRT refuses it): depthwise cases always carry one.
        with_bias = i % 3 or depthwise
        bias = rng.integers(-40000, 40000, out_c).astype(np.int32) if with_bias else None
        activation = ACTIVATIONS[i % 4]
        model = tb.conv2d_model(shape, in_q, w, w_scales, bias, out_q, stride, dil, padding,
                                activation, depthwise=depthwise)
        x = rng.integers(-128, 128, shape).astype(np.int8)
        cases.append(Case("%s%d" % ("dw" if depthwise else "conv", i), model, [x]))
    return cases


# (input NHWC, filter, stride, padding)
POOL_SHAPES = [
    ((1, 6, 6, 3), (2, 2), (2, 2), "VALID"),
    ((2, 5, 7, 4), (3, 3), (1, 1), "SAME"),
    ((1, 7, 5, 2), (3, 2), (2, 3), "SAME"),
    ((1, 4, 4, 9), (4, 4), (1, 1), "VALID"),  # global pooling
    ((1, 3, 8, 1), (2, 5), (2, 2), "SAME"),
]


def pool_cases(kind, int16=False):
    """int8 pools, or 16x8 ones (int16, zero point 0; the largest |values| in every window of
    the last case so the sums reach 2^15 * taps)."""
    rng = np.random.default_rng((40 if kind == "AVERAGE_POOL_2D" else 41) + 10 * int16)
    cases = []
    for i, (shape, f, stride, padding) in enumerate(POOL_SHAPES):
        if int16:
            q = (float(np.float32(rng.uniform(1e-4, 1e-3))), 0)
            x = rng.integers(-32768, 32768, shape).astype(np.int16)
            if i == len(POOL_SHAPES) - 1:
                x = rng.choice(np.array([-32768, 32767], np.int16), shape)
        else:
            q = _q(rng, 0.02, 0.2)
            x = rng.integers(-128, 128, shape).astype(np.int8)
        model = tb.pool2d_model(kind, shape, q, f, stride, padding, ACTIVATIONS[i % 4],
                                dtype=x.dtype)
        cases.append(Case("%s%s%d" % (kind.lower(), "16_" if int16 else "", i), model, [x]))
    return cases


# (shape1, shape2, second operand constant)
ELEMENTWISE_SHAPES = [
    ((1, 4, 4, 3), (1, 4, 4, 3), False),
    ((2, 3, 5), (2, 3, 5), True),
    ((1, 3, 4, 6), (6,), False),         # per-channel broadcast
    ((1, 5, 1, 3), (1, 1, 4, 1), False),  # both sides broadcast
    ((7,), (1,), True),                  # scalar constant
    ((2, 1, 3, 4), (2, 5, 1, 4), False),
]


def elementwise_cases(kind):
    rng = np.random.default_rng(50 if kind == "ADD" else 51)
    cases = []
    for i, (s1, s2, const) in enumerate(ELEMENTWISE_SHAPES):
        for j in range(2):
            q1, q2 = _q(rng, 0.01, 0.2), _q(rng, 0.01, 0.2)
            if kind == "ADD":
                out_q = _q(rng, max(q1[0], q2[0]), 3 * max(q1[0], q2[0]))
            else:
                out_q = _q(rng, q1[0] * q2[0] * 20, q1[0] * q2[0] * 150)
            a = rng.integers(-128, 128, s1).astype(np.int8)
            b = rng.integers(-128, 128, s2).astype(np.int8)
            model = tb.elementwise_model(kind, s1, q1, s2, q2, out_q, ACTIVATIONS[(i + j) % 4],
                                         const2=b if const else None)
            cases.append(Case("%s%d_%d" % (kind.lower(), i, j), model, [a] if const else [a, b]))
    return cases


def elementwise_s16_cases(kind):
    """16x8 ADD / MUL (int16, zero points 0) on ELEMENTWISE_SHAPES; the second case of each
    shape puts int16 extremes in both inputs (ADD's |x| << 15 and MUL's |x1 * x2| at 2^30)."""
    rng = np.random.default_rng(52 if kind == "ADD" else 53)
    extremes = np.array([-32768, 32767, -32767, 0], np.int16)
    cases = []
    for i, (s1, s2, const) in enumerate(ELEMENTWISE_SHAPES):
        for j in range(2):
            q1, q2 = (float(np.float32(rng.uniform(3e-5, 2e-4))) for _ in range(2))
            if kind == "ADD":
                out_s = rng.uniform(max(q1, q2), 3 * max(q1, q2))
            else:
                out_s = q1 * q2 * rng.uniform(3000, 40000)
            if j:
                a, b = rng.choice(extremes, s1), rng.choice(extremes, s2)
            else:
                a = rng.integers(-32768, 32768, s1).astype(np.int16)
                b = rng.integers(-32768, 32768, s2).astype(np.int16)
            model = tb.elementwise_model(kind, s1, (q1, 0), s2, (q2, 0),
                                         (float(np.float32(out_s)), 0), ACTIVATIONS[(i + j) % 4],
                                         const2=b if const else None, dtype=np.int16)
            cases.append(Case("%s16_%d_%d" % (kind.lower(), i, j), model, [a] if const else [a, b]))
    return cases


def rescale_s16_cases():
    """16x8 RELU, RELU6 (its input's quantization) and LEAKY_RELU: every 4th int16 value, a
    few scales; LEAKY_RELU's alphas include a negative one."""
    rng = np.random.default_rng(67)
    cases = []
    for kind in ("RELU", "RELU6", "LEAKY_RELU"):
        for j in range(3):
            x = np.arange(-32768 + j, 32768, 4, dtype=np.int16).reshape(1, 64, 256)
            in_s = float(np.float32(rng.uniform(1e-4, 1e-3)))
            out_s = in_s if kind == "RELU6" else float(np.float32(in_s * rng.uniform(0.5, 2.0)))
            alpha = (0.1, 0.3, -0.2)[j] if kind == "LEAKY_RELU" else None
            model = tb.unary_model(kind, list(x.shape), (in_s, 0), (out_s, 0), alpha,
                                   dtype=np.int16)
            cases.append(Case("%s16_%d" % (kind.lower(), j), model, [x]))
    return cases


def sigmoid_s16_cases():
    """16x8 LOGISTIC and TANH: every 4th int16 value (a different quarter per case), at
    power-of-two input scales (TFLM's multiplier-0 form) and others, output Q0.15."""
    cases = []
    for kind in ("LOGISTIC", "TANH"):
        for i, scale in enumerate((2 ** -12, 2 ** -11, 1 / 3000, 7e-4, 2 ** -15, 0.01)):
            x = np.arange(-32768 + i % 4, 32768, 4, dtype=np.int16).reshape(1, 64, 256)
            model = tb.unary_model(kind, list(x.shape), (scale, 0), (2 ** -15, 0), dtype=np.int16)
            cases.append(Case("%s16_%d" % (kind.lower(), i), model, [x]))
    return cases


POINTWISE = ["RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH", "LOGISTIC", "TANH", "QUANTIZE"]


def pointwise_cases():
    """Every int8 value through each pointwise op (the LUT kernel), a few scales each."""
    rng = np.random.default_rng(60)
    cases = []
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 4, 8, 8)
    for kind in POINTWISE:
        for j in range(3):
            in_q = _q(rng, 0.005, 0.2)
            out_q = ops.OPS[kind].fixed_output or (in_q if kind == "RELU6" else _q(rng, 0.005, 0.2))
            alpha = (0.1, 0.3, -0.2)[j] if kind == "LEAKY_RELU" else None
            model = tb.unary_model(kind, list(x.shape), in_q, out_q, alpha)
            cases.append(Case("%s%d" % (kind.lower(), j), model, [x]))
    return cases


def mean_cases():
    rng = np.random.default_rng(61)
    cases = []
    for i, (shape, keep) in enumerate([((1, 4, 4, 3), True), ((2, 3, 5, 4), True),
                                       ((1, 7, 7, 8), False), ((1, 1, 1, 5), True),
                                       ((1, 16, 12, 2), True)]):
        in_q = _q(rng, 0.01, 0.2)
        # A finer output scale spreads the means (which crowd near zero) over int8.
        out_q = in_q if i == 3 else (float(np.float32(in_q[0] * rng.uniform(0.03, 0.2))),
                                     int(rng.integers(-30, 31)))
        x = rng.integers(-128, 128, shape).astype(np.int8)
        cases.append(Case("mean%d" % i, tb.mean_model(shape, in_q, out_q, keep_dims=keep), [x]))
    return cases


def softmax_s16_cases():
    """16x8 SOFTMAX: rows of int16 at several input scales and betas (from every logit far
    below the max to all equal), a 2,000-deep row, and a row of int16 extremes."""
    rng = np.random.default_rng(66)
    cases = []
    for i, (shape, scale, beta) in enumerate([((4, 10), 1e-3, 1.0), ((3, 7), 3e-4, 0.5),
                                              ((2, 100), 5e-5, 1.0), ((1, 2000), 1e-4, 1.0),
                                              ((16, 3), 2e-3, 2.0), ((2, 6), 1e-3, 1.0)]):
        if i == 5:
            x = np.array([[-32768, 32767, 32767, -32768, 0, 1],
                          [-32768] * 6], np.int16)
        else:
            x = rng.integers(-32768, 32768, shape).astype(np.int16)
        model = tb.softmax_model(list(shape), (scale, 0), beta, dtype=np.int16)
        cases.append(Case("softmax16_%d" % i, model, [x]))
    return cases


def requantize_s16_cases():
    """QUANTIZE int8 -> int16 (every int8 value), int16 -> int8 and int16 -> int16 (every 4th
    int16 value) at scales that clip and that do not: where int8 and 16x8 layers meet."""
    rng = np.random.default_rng(68)
    cases = []
    x8 = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    for i in range(3):
        s8 = float(np.float32(rng.uniform(0.01, 0.1)))
        model = tb.requantize_model([1, 256], (s8, int(rng.integers(-128, 128))),
                                    (float(np.float32(s8 * rng.uniform(0.002, 0.05))), 0),
                                    np.int8, np.int16)
        cases.append(Case("requant8_16_%d" % i, model, [x8]))
    for i in range(3):
        x16 = np.arange(-32768 + i, 32768, 4, dtype=np.int16).reshape(1, 64, 256)
        s16 = float(np.float32(rng.uniform(1e-4, 1e-3)))
        out8 = (float(np.float32(s16 * rng.uniform(100, 400))), int(rng.integers(-50, 50)))
        cases.append(Case("requant16_8_%d" % i, tb.requantize_model(
            list(x16.shape), (s16, 0), out8, np.int16, np.int8), [x16]))
        out16 = (float(np.float32(s16 * rng.uniform(0.5, 2.0))), 0)
        cases.append(Case("requant16_16_%d" % i, tb.requantize_model(
            list(x16.shape), (s16, 0), out16, np.int16, np.int16), [x16]))
    return cases


def mean_s16_cases():
    """16x8 MEAN; the last case sums 65,535 values of -32768 (the int32 sum's edge)."""
    rng = np.random.default_rng(65)
    cases = []
    for i, (shape, keep) in enumerate([((1, 4, 4, 3), True), ((2, 3, 5, 4), False),
                                       ((1, 7, 7, 8), True), ((1, 255, 257, 1), True)]):
        in_s = float(np.float32(rng.uniform(1e-4, 1e-3)))
        out_s = float(np.float32(in_s * rng.uniform(0.3, 1.0)))
        if i == 3:
            x = np.full(shape, -32768, np.int16)
            out_s = in_s
        else:
            x = rng.integers(-32768, 32768, shape).astype(np.int16)
        model = tb.mean_model(shape, (in_s, 0), (out_s, 0), keep_dims=keep, dtype=np.int16)
        cases.append(Case("mean16_%d" % i, model, [x]))
    return cases


def pad_cases():
    rng = np.random.default_rng(62)
    cases = []
    for i, (shape, pads, constant) in enumerate([
            ((1, 3, 4, 2), [[0, 0], [1, 2], [2, 1], [0, 0]], None),
            ((2, 3, 5), [[1, 0], [0, 2], [3, 1]], None),
            ((4, 6), [[2, 2], [1, 3]], -7),
            ((1, 2, 2, 3), [[0, 1], [1, 1], [0, 0], [1, 2]], 100)]):
        q = _q(rng, 0.01, 0.2)
        x = rng.integers(-128, 128, shape).astype(np.int8)
        cases.append(Case("pad%d" % i, tb.pad_model(shape, q, pads, constant), [x]))
    return cases


def concatenation_cases():
    rng = np.random.default_rng(63)
    cases = []
    for i, (shapes, axis) in enumerate([
            ([(1, 2, 3, 4), (1, 2, 3, 2)], 3),
            ([(1, 2, 3, 4), (1, 5, 3, 4), (1, 1, 3, 4)], 1),
            ([(2, 3), (1, 3), (4, 3)], 0),
            ([(2, 3, 4), (2, 2, 4)], -2),
            ([(1, 2, 2, 1), (1, 2, 2, 3), (1, 2, 2, 2), (1, 2, 2, 1)], -1)]):
        q = _q(rng, 0.01, 0.2)
        xs = [rng.integers(-128, 128, s).astype(np.int8) for s in shapes]
        cases.append(Case("concat%d" % i, tb.concatenation_model(shapes, axis, q), xs))
    return cases


def pad_s16_cases():
    """16x8 PAD (int16 byte pairs, pad value 0) and CONCATENATION along every kind of axis."""
    rng = np.random.default_rng(64)
    cases = []
    for i, (shape, pads) in enumerate([((1, 3, 4, 2), [[0, 0], [1, 2], [2, 1], [0, 0]]),
                                       ((2, 3, 5), [[1, 0], [0, 2], [3, 1]]),
                                       ((1, 2, 3, 1), [[0, 1], [1, 1], [0, 0], [1, 2]])]):
        x = rng.integers(-32768, 32768, shape).astype(np.int16)
        model = tb.pad_model(shape, (0.001, 0), pads, dtype=np.int16)
        cases.append(Case("pad16_%d" % i, model, [x]))
    for i, (shapes, axis) in enumerate([([(1, 2, 3, 4), (1, 2, 3, 2)], 3),
                                        ([(1, 2, 3, 4), (1, 5, 3, 4), (1, 1, 3, 4)], 1),
                                        ([(2, 3), (1, 3), (4, 3)], 0),
                                        ([(1, 2, 2, 1), (1, 2, 2, 3)], -1)]):
        xs = [rng.integers(-32768, 32768, s).astype(np.int16) for s in shapes]
        model = tb.concatenation_model(shapes, axis, (0.002, 0), dtype=np.int16)
        cases.append(Case("concat16_%d" % i, model, xs))
    return cases


def fully_connected_cases():
    """Per-tensor weights (the blob stores one mult/shift pair) and per-channel ones."""
    rng, cases = np.random.default_rng(18), []
    for j, (in_d, out_d, batches, per_channel) in enumerate(
            [(24, 9, 1, False), (17, 5, 3, False), (24, 9, 2, True), (33, 1, 1, False)]):
        in_q = _q(rng)
        w_scales = rng.uniform(0.002, 0.02, out_d if per_channel else 1).astype(np.float32)
        out_q = (_conv_output_scale(rng, in_q[0], w_scales, in_d), int(rng.integers(-20, 20)))
        w = rng.integers(-127, 128, (out_d, in_d)).astype(np.int8)
        bias = rng.integers(-3000, 3000, out_d).astype(np.int32)
        model = tb.fully_connected_model(in_d, out_d, batches, in_q, w, w_scales, bias, out_q,
                                         ACTIVATIONS[j % len(ACTIVATIONS)])
        x = rng.integers(-128, 128, (batches, in_d)).astype(np.int8)
        cases.append(Case("fully_connected_%d" % j, model, [x]))
    return cases


# (input shape, permutation): PyTorch's NCHW -> NHWC and back, every rank up to 4, and
# permutations that only move size-1 dimensions (compiled as an alias, no kernel)
TRANSPOSE_SHAPES = [
    ((1, 3, 5, 4), (0, 2, 3, 1)),
    ((1, 5, 4, 3), (0, 3, 1, 2)),
    ((2, 3, 4, 5), (3, 1, 0, 2)),
    ((3, 4, 5), (2, 0, 1)),
    ((7, 6), (1, 0)),
    ((9,), (0,)),
    ((1, 1, 6, 5), (1, 2, 0, 3)),
    ((4, 1, 1, 3), (1, 0, 3, 2)),
]


def transpose_cases():
    rng = np.random.default_rng(64)
    cases = []
    for i, (shape, perm) in enumerate(TRANSPOSE_SHAPES):
        x = rng.integers(-128, 128, shape).astype(np.int8)
        cases.append(Case("transpose%d" % i, tb.transpose_model(shape, _q(rng), perm), [x]))
    # 16x8: int16 elements move as byte pairs (a rank-4 one moving every axis is refused)
    for i, (shape, perm) in enumerate([((1, 3, 5, 4), (0, 2, 3, 1)), ((3, 4, 5), (2, 0, 1)),
                                       ((7, 6), (1, 0)), ((2, 1, 3, 4), (1, 3, 0, 2))]):
        x = rng.integers(-32768, 32768, shape).astype(np.int16)
        model = tb.transpose_model(shape, (0.001, 0), perm, dtype=np.int16)
        cases.append(Case("transpose16_%d" % i, model, [x]))
    return cases


# (batches, in_depth, out_depth, edge): edge cases put int16 and int8 extremes in every
# product (-32768 * -128 = 2^22) so the sums leave int32, with int64 biases near 2^40;
# in_depth 70,000 runs past the viper kernel's 65,535-product chunks.
FC16_SHAPES = [(1, 16, 8, False), (3, 64, 10, False), (2, 1024, 6, True), (1, 70000, 3, True)]


def fully_connected_s16_cases():
    """16x8 FULLY_CONNECTED: int16 activations (zero point 0), int8 weights, int64 bias."""
    rng = np.random.default_rng(65)
    cases = []
    for i, (batches, depth, out_depth, edge) in enumerate(FC16_SHAPES):
        if edge:
            w = rng.choice(np.array([-128, -127, 127], np.int8), (out_depth, depth))
            w[0], w[1] = 127, -128
            x = np.empty((batches, depth), np.int16)
            x[0] = -32768
            x[1:] = rng.choice(np.array([-32768, 32767], np.int16), (batches - 1, depth))
            bias = rng.integers(-(1 << 40), 1 << 40, out_depth)
        else:
            w = rng.integers(-127, 128, (out_depth, depth)).astype(np.int8)
            x = rng.integers(-32768, 32768, (batches, depth)).astype(np.int16)
            bias = rng.integers(-(1 << 24), 1 << 24, out_depth)
        s_in, s_out = float(np.float32(rng.uniform(1e-4, 1e-3))), 0.01
        # weight scales that bring each row's largest accumulator to about +-20,000
        acc = np.abs(x.astype(np.int64) @ w.astype(np.int64).T + bias).max(axis=0)
        w_scales = (rng.uniform(8000, 30000, out_depth) * s_out / s_in
                    / np.maximum(acc, 1)).astype(np.float32)
        model = tb.fully_connected_model(depth, out_depth, batches, (s_in, 0), w, w_scales,
                                         bias if i != 1 else None, (s_out, 0),
                                         "NONE" if edge else ACTIVATIONS[i % 4], int16=True)
        cases.append(Case("fc16_%d" % i, model, [x]))
    return cases


def conv_s16_cases(depthwise):
    """16x8 CONV_2D / DEPTHWISE_CONV_2D on CONV_SHAPES; the last case puts the int16 and
    int8 extremes in every tap and biases beyond int32 so the sums leave int32."""
    rng = np.random.default_rng(67 if depthwise else 66)
    cases = []
    shapes = CONV_SHAPES + [((1, 6, 6, 40), 3, (3, 3), (1, 1), (1, 1), "SAME")]
    for i, (shape, ch, k, stride, dil, padding) in enumerate(shapes):
        in_c = shape[3]
        edge = i == len(shapes) - 1
        out_c = in_c * ((1, 2, 3)[i % 3] if in_c < 17 else 1) if depthwise else ch
        w_shape = (1, k[0], k[1], out_c) if depthwise else (out_c, k[0], k[1], in_c)
        if edge:
            w = rng.choice(np.array([-128, -127, 127], np.int8), w_shape)
            x = rng.choice(np.array([-32768, 32767], np.int16), shape)
            x[..., :2] = -32768
        else:
            w = rng.integers(-127, 128, w_shape).astype(np.int8)
            x = rng.integers(-32768, 32768, shape).astype(np.int16)
        taps = k[0] * k[1] * (1 if depthwise else in_c)
        s_in, s_out = float(np.float32(rng.uniform(1e-4, 1e-3))), 0.01
        # spread the outputs: accumulators of about 32768 * 128 * sqrt(taps) (for the edge
        # case, biases beyond int32) land near +-15,000
        typical = max(1 << 33, 32768 * 128 * taps) if edge else 32768 * 128 * 0.3 * np.sqrt(taps)
        w_scales = (rng.uniform(8000, 20000, out_c if i % 2 == 0 else 1) * s_out / s_in
                    / typical).astype(np.float32)
        bias = rng.integers(-(1 << 33), 1 << 33, out_c) if edge else (
            rng.integers(-(1 << 22), 1 << 22, out_c) if i % 3 or depthwise else None)
        model = tb.conv2d_model(shape, (s_in, 0), w, w_scales, bias, (s_out, 0), stride, dil,
                                padding, "NONE" if edge else ACTIVATIONS[i % 4],
                                depthwise=depthwise, int16=True)
        cases.append(Case("%s16_%d" % ("dw" if depthwise else "conv", i), model, [x]))
    return cases


def quantize_s16_cases():
    """16x8 models' float edges: QUANTIZE float32 -> int16 on ties, saturation and signed
    zeros; DEQUANTIZE of every 4th int16 value (a different quarter per scale; 96 KB of
    arena, so that a 256 KB board runs it) and both extremes."""
    rng = np.random.default_rng(68)
    cases = []
    for i, (scale, zp) in enumerate([(1e-3, 0), (0.37, 0), (2.5e-5, 7)]):
        k = rng.integers(-40000, 40000, 200)
        x = np.concatenate([(k + 0.5) * scale, k * scale, rng.normal(0, 40000 * scale, 200),
                            # far beyond int16, inside int32 (beyond, TFLM's cast is undefined)
                            [0.0, -0.0, 2e9 * scale, -2e9 * scale]]).astype(np.float32).reshape(1, -1)
        cases.append(Case("quantize16_%d" % i, tb.quantize_model(list(x.shape), (scale, zp),
                                                                 np.int16), [x]))
        q = np.arange(-32768 + i, 32768, 4, dtype=np.int16)
        q[0], q[-1] = -32768, 32767
        q = q.reshape(64, 256)
        cases.append(Case("dequantize16_%d" % i, tb.dequantize_model([64, 256], (scale, zp),
                                                                     np.int16), [q]))
    return cases


def all_cases():
    return (fully_connected_cases() + conv_cases(False) + conv_cases(True) + pool_cases("AVERAGE_POOL_2D")
            + pool_cases("MAX_POOL_2D") + elementwise_cases("ADD") + elementwise_cases("MUL")
            + pointwise_cases() + mean_cases() + pad_cases() + concatenation_cases()
            + transpose_cases() + fully_connected_s16_cases() + conv_s16_cases(False)
            + conv_s16_cases(True) + quantize_s16_cases() + pool_cases("AVERAGE_POOL_2D", True)
            + pool_cases("MAX_POOL_2D", True) + pad_s16_cases() + elementwise_s16_cases("ADD")
            + elementwise_s16_cases("MUL") + sigmoid_s16_cases() + mean_s16_cases()
            + softmax_s16_cases() + rescale_s16_cases() + requantize_s16_cases())
