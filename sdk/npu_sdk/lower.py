"""TFLite int8 spec arithmetic: fixed-point multipliers, shifts and clamps.

The single source of truth on the host for how float scales become kernel
parameters. Every function reproduces what TFLite Micro computes in its
Prepare step, including where it rounds to float32 and where it stays in
double, so that the C and viper kernels fed with these numbers are bit-exact
with the TFLM oracle. Pure Python + numpy, no I/O.
"""

import math

import numpy as np

from .errors import ModelError

INT8_MIN, INT8_MAX = -128, 127
INT16_MIN, INT16_MAX = -32768, 32767
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1

# Softmax input differences are held in Q5.26 (TFLM kScaledDiffIntegerBits).
SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def _f32(x):
    """Round a Python float to float32 and back, as storing into a C float does."""
    return float(np.float32(x))


def _round_half_away(x):
    """TfLiteRound / std::round: ties away from zero (Python's round() ties to even)."""
    r = math.floor(abs(x) + 0.5)
    return int(-r if x < 0 else r)


def quantize_multiplier(real):
    """Split `real` into (int32 multiplier, shift) with real ~= m * 2**(shift - 31).

    Same as TFLite's QuantizeMultiplier (double-rounding build).
    """
    real = float(real)
    if not math.isfinite(real):
        raise ModelError("quantize_multiplier: multiplier must be finite, got %r" % real)
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)  # q in [0.5, 1)
    # q * 2**31 is exact in double, so only the rounding below is lossy.
    q_fixed = _round_half_away(q * (1 << 31))
    if abs(q_fixed) == 1 << 31:
        # q rounded up to 1.0: renormalise to 0.5 and bump the exponent.
        q_fixed //= 2
        shift += 1
    if shift < -31:
        # Everything would be shifted out; TFLite flushes such multipliers to 0.
        return 0, 0
    return int(q_fixed), int(shift)


def activation_range(activation, scale, zero_point, qmin=INT8_MIN, qmax=INT8_MAX):
    """(act_min, act_max) for a fused activation, as CalculateActivationRangeQuantized."""
    activation = str(activation).upper()
    if activation not in ACTIVATIONS:
        raise ModelError("unsupported fused activation %r; supported: %s"
                         % (activation, ", ".join(ACTIVATIONS)))
    scale32 = np.float32(scale)

    def quantize(f):
        # TFLM divides in float32 (float f / float scale), then std::round.
        with np.errstate(over="ignore", divide="ignore"):
            q = np.float32(f) / scale32
        if not (INT32_MIN <= float(q) <= INT32_MAX):
            raise ModelError("activation %s: %g / output scale %g overflows int32; the "
                             "output scale is too small" % (activation, f, float(scale32)))
        return int(zero_point) + _round_half_away(float(q))

    if activation == "RELU":
        return max(qmin, quantize(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    return qmin, qmax


def fully_connected_params(input_scale, input_zero_point, weight_scales, output_scale,
                           output_zero_point, activation="NONE", out_depth=None, int16=False):
    """Per-output-channel multipliers/shifts, offsets and clamp for an int8 FC (`int16`:
    16x8, the clamp in int16).

    `weight_scales` has one entry (per-tensor weights, replicated to `out_depth`
    channels) or one per output channel.
    """
    scales = [float(s) for s in np.atleast_1d(np.asarray(weight_scales, dtype=np.float64))]
    if not scales:
        raise ModelError("fully_connected: weights have no quantization scale")
    if out_depth is None:
        out_depth = len(scales)
    if len(scales) not in (1, out_depth):
        raise ModelError("fully_connected: %d weight scales for %d output channels; expected "
                         "1 (per-tensor) or %d (per-channel)" % (len(scales), out_depth, out_depth))
    in_s, out_s = _f32(input_scale), _f32(output_scale)
    if not out_s > 0.0:
        raise ModelError("fully_connected: output scale must be > 0, got %r" % output_scale)
    # The scales are float32 in the model; the product and the quotient are
    # formed in double, left to right. For per-tensor weights the TFLM source
    # (GetQuantizedConvolutionMultipler) reads as a float32 product, but the
    # tflite-micro build we test against demonstrably uses the double product
    # (tests/conformance: test_fully_connected_per_tensor_scale_product), so
    # both cases share one formula; per-tensor is replicated.
    if len(scales) == 1:
        scales = scales * out_depth
    pairs = [quantize_multiplier(in_s * _f32(w) / out_s) for w in scales]
    mult = np.array([p[0] for p in pairs], dtype=np.int32)
    shift = np.array([p[1] for p in pairs], dtype=np.int32)
    limits = (INT16_MIN, INT16_MAX) if int16 else (INT8_MIN, INT8_MAX)
    act_min, act_max = activation_range(activation, out_s, int(output_zero_point), *limits)
    return {
        "mult": mult,
        "shift": shift,
        "input_offset": -int(input_zero_point),
        "output_offset": int(output_zero_point),
        "act_min": int(act_min),
        "act_max": int(act_max),
    }


def softmax_params(input_scale, beta=1.0):
    """(input_multiplier, input_left_shift, diff_min) for int8 softmax, as TFLM Prepare."""
    int_bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS
    # beta is a float in TfLiteSoftmaxParams and the scale a float in the tensor;
    # the product is then formed in double and capped below 2**31.
    real = min(_f32(beta) * _f32(input_scale) * (1 << (31 - int_bits)), (1 << 31) - 1.0)
    if not real > 1.0:
        # TFLM aborts here (QuantizeMultiplierGreaterThanOne); refuse instead.
        raise ModelError("softmax: beta * input_scale = %g is below 2**-26; the input scale "
                         "is too small for int8 softmax" % (_f32(beta) * _f32(input_scale)))
    mult, shift = quantize_multiplier(real)
    # CalculateInputRadius: the largest |diff| whose rescaled value still fits Q5.26.
    radius = math.floor(((1 << int_bits) - 1) * float(1 << (31 - int_bits)) / float(1 << shift))
    return mult, shift, -int(radius)


def _round_f32(x):
    """TfLiteRound on a float: ties away from zero, in float32."""
    return np.float32(math.floor(abs(float(x)) + 0.5) * (1 if x >= 0 else -1))


def _gen_lut_s16(func, input_min, input_max):
    """TFLM's gen_lut<float, int16_t, int16_t> with outputs in [-1, 1]: 512 samples of
    `func` over [input_min, input_max] in float32, each biased by half its interpolation
    error at the midpoint, and a 513th for the last slope."""
    f32 = np.float32
    lo, hi = f32(input_min), f32(input_max)
    step = (hi - lo) / f32(512)
    half, scale = step / f32(2), f32(65536) / (f32(1) - f32(-1))
    lut = []
    for i in range(512):
        val = func(lo + f32(i) * step)
        mid = func(lo + f32(i) * step + half)
        nxt = func(lo + f32(i + 1) * step)
        sample = _round_f32(val * scale)
        interp = _round_f32((nxt * scale + _round_f32(val * scale)) / f32(2))
        bias = _round_f32((interp - _round_f32(mid * scale)) / f32(2))
        lut.append(int(min(max(sample - bias, f32(-32768)), f32(32767))))
    lut.append(int(min(max(_round_f32(func(hi) * scale), f32(-32768)), f32(32767))))
    return lut


def _expf(x):
    """float32 exp, correctly rounded (as glibc's expf)."""
    return np.float32(math.exp(float(x)))


def softmax_s16_luts():
    """TFLM's 16x8 SOFTMAX tables, 513 int16 each: exp over [-10, 0] and 1 / (1 + x) over
    [0, 1], outputs Q0.15 (computed as its Prepare does)."""
    return (_gen_lut_s16(_expf, -10.0, 0.0),
            _gen_lut_s16(lambda v: np.float32(1) / (np.float32(1) + v), 0.0, 1.0))


def softmax_s16_params(input_scale, beta, output_scale, output_zero_point):
    """(input_multiplier, input_shift) of 16x8 SOFTMAX as TFLM's Prepare: the input
    difference rescaled so that [-65535, 0] is [-10, 0]; output 1/32768 (within 0.1%), 0."""
    if output_zero_point != 0 or abs(_f32(output_scale) - 1 / 32768) > 0.001 / 32768:
        raise ModelError("int16 softmax output must have scale 1/32768 and zero point 0 (got "
                         "%g, %d)" % (_f32(output_scale), output_zero_point))
    mult, shift = quantize_multiplier(_f32(input_scale) * _f32(beta) / (10.0 / 65535.0))
    if not -31 <= shift <= 31 or mult <= 0:
        raise ModelError("int16 softmax: beta * input scale %g is out of the fixed-point range"
                         % (_f32(input_scale) * _f32(beta)))
    return mult, shift


# ---- convolution and pooling geometry -------------------------------------------

PADDINGS = ("SAME", "VALID")


def conv_output_size(padding, in_size, filter_size, stride, dilation=1):
    """Output extent along one axis, as TFLite's ComputeOutSize."""
    effective = (filter_size - 1) * dilation + 1
    if padding == "SAME":
        return (in_size + stride - 1) // stride
    if padding == "VALID":
        return (in_size - effective + stride) // stride
    raise ModelError("unsupported padding %r; supported: %s" % (padding, ", ".join(PADDINGS)))


def conv_padding(padding, in_size, filter_size, stride, dilation, out_size):
    """Leading (top or left) padding, as TFLite's ComputePaddingWithOffset.

    Any odd total padding goes to the trailing side, which the kernels need not
    know: reads past the input are skipped by bounds checks.
    """
    effective = (filter_size - 1) * dilation + 1
    total = max((out_size - 1) * stride + effective - in_size, 0)
    return total // 2


def conv_params(input_scale, input_zero_point, weight_scales, output_scale, output_zero_point,
                activation="NONE", out_depth=None, int16=False):
    """Per-output-channel requantization for CONV_2D and DEPTHWISE_CONV_2D.

    TFLM's PopulateConvolutionQuantizationParams forms input_scale *
    filter_scale / output_scale in double per channel, exactly as the fully
    connected layer does, so the same formula serves.
    """
    return fully_connected_params(input_scale, input_zero_point, weight_scales, output_scale,
                                  output_zero_point, activation, out_depth, int16)


# ---- elementwise arithmetic ---------------------------------------------------------

ADD_LEFT_SHIFT = 20  # TFLM's int8 ADD headroom
ADD_LEFT_SHIFT_S16 = 15  # and its int16 one: |x| << 15 <= 2^30 fits int32


def _quantize_multiplier_smaller_than_one(real, what):
    if not 0.0 <= real < 1.0:
        raise ModelError("%s: rescaling factor %g must be in [0, 1) for int8 ADD; the output "
                         "scale is too small next to the input scales" % (what, real))
    return quantize_multiplier(real)


def add_params(input1_scale, input1_zero_point, input2_scale, input2_zero_point, output_scale,
               output_zero_point, activation="NONE", int16=False):
    """int8 ADD parameters, as TFLM's CalculateOpDataAdd (doubles from float32 scales);
    `int16`: 16x8, its left shift 15 and the clamp in int16."""
    s1, s2, so = _f32(input1_scale), _f32(input2_scale), _f32(output_scale)
    if not (s1 > 0 and s2 > 0 and so > 0):
        raise ModelError("add: scales must be > 0, got %r, %r -> %r" % (s1, s2, so))
    twice_max = 2 * max(s1, s2)
    m1, sh1 = _quantize_multiplier_smaller_than_one(s1 / twice_max, "add input 1")
    m2, sh2 = _quantize_multiplier_smaller_than_one(s2 / twice_max, "add input 2")
    left_shift = ADD_LEFT_SHIFT_S16 if int16 else ADD_LEFT_SHIFT
    mo, sho = _quantize_multiplier_smaller_than_one(
        twice_max / ((1 << left_shift) * so), "add output")
    act_min, act_max = activation_range(activation, so, int(output_zero_point), *_limits(int16))
    return dict(input1_offset=-int(input1_zero_point), input2_offset=-int(input2_zero_point),
                left_shift=left_shift, input1_multiplier=m1, input1_shift=sh1,
                input2_multiplier=m2, input2_shift=sh2, output_multiplier=mo, output_shift=sho,
                output_offset=int(output_zero_point), act_min=act_min, act_max=act_max)


def mul_params(input1_scale, input1_zero_point, input2_scale, input2_zero_point, output_scale,
               output_zero_point, activation="NONE", int16=False):
    """int8 MUL parameters, as TFLM's CalculateOpDataMul (double product and quotient);
    `int16`: 16x8, the clamp in int16."""
    s1, s2, so = _f32(input1_scale), _f32(input2_scale), _f32(output_scale)
    if not so > 0:
        raise ModelError("mul: output scale must be > 0, got %r" % so)
    mult, shift = quantize_multiplier(s1 * s2 / so)
    if not -31 <= shift <= 31:
        raise ModelError("mul: rescaling factor %g is out of the int32 fixed-point range"
                         % (s1 * s2 / so))
    act_min, act_max = activation_range(activation, so, int(output_zero_point), *_limits(int16))
    return dict(input1_offset=-int(input1_zero_point), input2_offset=-int(input2_zero_point),
                output_multiplier=mult, output_shift=shift, output_offset=int(output_zero_point),
                act_min=act_min, act_max=act_max)


def _limits(int16):
    return (INT16_MIN, INT16_MAX) if int16 else (INT8_MIN, INT8_MAX)


def broadcast_strides(in_shape, out_shape):
    """Element strides of an input over the 4-D output index space (0 where broadcast).

    Shapes are right-aligned and padded with 1s to rank 4, as TFLite's
    NdArrayDesc; a dimension broadcasts when the input has 1 there.
    """
    in_shape = [1] * (4 - len(in_shape)) + list(in_shape)
    out_shape = [1] * (4 - len(out_shape)) + list(out_shape)
    strides, step = [0] * 4, 1
    for d in range(3, -1, -1):
        if in_shape[d] == out_shape[d]:
            strides[d] = step if in_shape[d] > 1 else 0
        elif in_shape[d] != 1:
            raise ModelError("shape %s does not broadcast to %s" % (tuple(in_shape), tuple(out_shape)))
        step *= in_shape[d]
    return strides


# ---- 256-entry lookup tables for int8 -> int8 pointwise ops -------------------------
# An int8 -> int8 function of one value is a table of 256 bytes. The tables below are
# computed with TFLite Micro's own integer arithmetic (its Prepare-time multipliers and
# its Eval-time fixed point), value by value, never from floats, so a board that only
# indexes the table is bit-exact with TFLM. Index: input value + 128.

_INPUTS = range(INT8_MIN, INT8_MAX + 1)


def _trunc_div(a, b):
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _wrap32(x):
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul, int32."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    return _trunc_div(ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30)), 1 << 31)


def _rdbpot(x, exponent):
    """gemmlowp RoundingDivideByPOT: x / 2**exponent, ties away from zero."""
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def _sat_shl(x, exponent):
    """gemmlowp SaturatingRoundingMultiplyByPOT with a positive exponent, int32."""
    threshold = (1 << (31 - exponent)) - 1
    return INT32_MAX if x > threshold else INT32_MIN if x < -threshold else x << exponent


def multiply_by_quantized_multiplier(x, mult, shift):
    """TFLite MultiplyByQuantizedMultiplier (double rounding), int32 in and out."""
    left = shift if shift > 0 else 0
    return _rdbpot(_srdhm(_wrap32(x << left), mult), 0 if shift > 0 else -shift)


def _exp_on_interval(a):
    """exp(a) for a in [-1/4, 0), Q0.31 in and out (gemmlowp)."""
    x = a + (1 << 28)
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    poly = _rdbpot(_srdhm(_rdbpot(x4, 2) + x3, 715827883) + x2, 1)
    return 1895147668 + _srdhm(1895147668, x + poly)


_EXP_BARREL = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)


def _exp_on_negative_values(a, integer_bits):
    """gemmlowp exp_on_negative_values: a <= 0 with `integer_bits` (<= 5), result Q0.31."""
    fractional = 31 - integer_bits
    quarter = 1 << (fractional - 2)
    a_mod = (a & (quarter - 1)) - quarter
    result = _exp_on_interval(_sat_shl(a_mod, integer_bits))
    remainder = a_mod - a
    for k, multiplier in zip(range(-2, 5), _EXP_BARREL):
        if integer_bits > k and remainder & (1 << (fractional + k)):
            result = _srdhm(result, multiplier)
    return INT32_MAX if a == 0 else result


def _rounding_half_sum(a, b):
    s = a + b
    return _trunc_div(s + (1 if s >= 0 else -1), 2)


def _newton_reciprocal(half_denominator):
    """1 / (2 * half_denominator) in Q2.29 by three Newton-Raphson steps (gemmlowp)."""
    x = 1515870810 + _srdhm(half_denominator, -1010580540)  # 48/17 - 32/17 * d
    for _ in range(3):
        x = x + _sat_shl(_srdhm(x, (1 << 29) - _srdhm(half_denominator, x)), 2)
    return x


def _one_over_one_plus_x(a):
    return _sat_shl(_newton_reciprocal(_rounding_half_sum(a, INT32_MAX)), 1)


def _one_minus_x_over_one_plus_x(a):
    return _sat_shl(_newton_reciprocal(_rounding_half_sum(a, INT32_MAX)) - (1 << 29), 2)


def _clamp8(x):
    return min(max(x, INT8_MIN), INT8_MAX)


def _table(values):
    return np.array([_clamp8(v) for v in values], dtype=np.int8)


def relu_lut(kind, input_scale, input_zero_point, output_scale, output_zero_point):
    """RELU as TFLM's ReluQuantized (CalculateReluOpData: rescale, then clamp at zero).

    RELU6 is TFLM's Relu6Quantized: a clamp of the raw input to [input zero point,
    quantized 6.0] on the input's scale; the output quantization is not used.
    """
    if kind == "RELU6":
        lo, hi = activation_range("RELU6", input_scale, input_zero_point)
        return _table(min(max(q, lo), hi) for q in _INPUTS)
    mult, shift = quantize_multiplier(_f32(input_scale) / _f32(output_scale))
    act_min, act_max = activation_range(kind, output_scale, output_zero_point)
    return _table(min(max(output_zero_point + multiply_by_quantized_multiplier(
        q - input_zero_point, mult, shift), act_min), act_max) for q in _INPUTS)


def leaky_relu_lut(alpha, input_scale, input_zero_point, output_scale, output_zero_point):
    """LEAKY_RELU as TFLM's QuantizeLeakyRelu; the alpha product is float32 as in TFLM."""
    s_in, s_out = np.float32(input_scale), np.float32(output_scale)
    m_alpha, s_alpha = quantize_multiplier(float(s_in * np.float32(alpha) / s_out))
    m_id, s_id = quantize_multiplier(float(s_in / s_out))
    for shift in (s_alpha, s_id):
        if not -31 <= shift <= 31:
            raise ModelError("leaky_relu: rescaling factor is out of the int32 fixed-point range")
    out = []
    for q in _INPUTS:
        x = q - input_zero_point
        m, s = (m_id, s_id) if x >= 0 else (m_alpha, s_alpha)
        out.append(output_zero_point + multiply_by_quantized_multiplier(x, m, s))
    return _table(out)


def rescale_s16_params(kind, alpha, input_scale, output_scale):
    """16x8 RELU, RELU6 and LEAKY_RELU (zero points 0) as one two-slope rescale and clamp:
    y = clamp(MultiplyByQuantizedMultiplier(x, pos or neg multiplier and shift), act_min,
    act_max), with TFLM's Prepare-time arithmetic of each (RELU6 clamps its raw input)."""
    identity = (1 << 30, 1)  # MultiplyByQuantizedMultiplier(x, 2^30, 1) == x for int16 x
    if kind == "RELU6":
        act = activation_range("RELU6", input_scale, 0, INT16_MIN, INT16_MAX)
        pos = neg = identity
    elif kind == "RELU":
        pos = neg = quantize_multiplier(_f32(input_scale) / _f32(output_scale))
        act = activation_range("RELU", output_scale, 0, INT16_MIN, INT16_MAX)
    else:  # the int16 kernel's multipliers from float32 scales and alpha in double (measured:
        # float32 products differ from TFLM's int16 outputs at ties)
        s_in, s_out, a = _f32(input_scale), _f32(output_scale), _f32(alpha)
        neg, pos = quantize_multiplier(s_in * a / s_out), quantize_multiplier(s_in / s_out)
        act = (INT16_MIN, INT16_MAX)
    for _, shift in (pos, neg):
        if not -31 <= shift <= 31:
            raise ModelError("%s: rescaling factor is out of the int32 fixed-point range"
                             % kind.lower())
    return dict(pos_multiplier=pos[0], pos_shift=pos[1], neg_multiplier=neg[0],
                neg_shift=neg[1], act_min=act[0], act_max=act[1])


def _sat16(x):
    return min(max(x, -(1 << 15)), (1 << 15) - 1)


def _srdhm16(a, b):
    if a == b == -(1 << 15):
        return (1 << 15) - 1
    ab = a * b
    return _trunc_div(ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14)), 1 << 15)


def _sdhm16(a, b):
    """TFLite's SaturatingDoublingHighMul (no rounding), int16."""
    if a == b == -(1 << 15):
        return (1 << 15) - 1
    return _trunc_div(a * b, 1 << 15)


def _downscale_to_int16(m):
    """TFLite's DownScaleInt32ToInt16Multiplier."""
    return (1 << 15) - 1 if m >= INT32_MAX - (1 << 15) else (m + (1 << 15)) >> 16


def hard_swish_lut(input_scale, input_zero_point, output_scale, output_zero_point):
    """HARD_SWISH as TFLM's reference HardSwish (int16 fixed point, two multipliers)."""
    hires = np.float32(1.0 / 128.0) * np.float32(input_scale)
    m_out, e_out = quantize_multiplier(float(hires / np.float32(output_scale)))
    m_relu, e_relu = quantize_multiplier(float(hires / (np.float32(3.0) / np.float32(32768.0))))
    if not (-15 <= e_out <= 0 and -15 <= e_relu <= 15):
        raise ModelError("hard_swish: input/output scale ratio %g is outside the range TFLM "
                         "supports" % (float(input_scale) / float(output_scale)))
    m_out, m_relu = _downscale_to_int16(m_out), _downscale_to_int16(m_relu)
    out = []
    for q in _INPUTS:
        x = (q - input_zero_point) * 128
        preshift = _srdhm16(x, m_out)
        r = x
        if e_relu > 0:
            r = _sat16(r << (e_relu - 1))
        r = _srdhm16(r, m_relu)
        if e_relu > 0:
            r = _sat16(r << 1)
        elif e_relu < 0:
            r = _rdbpot(r, -e_relu)
        r = (r + (1 << 15)) >> 1
        out.append(_rdbpot(_sdhm16(r, preshift), -e_out) + output_zero_point)
    return _table(out)


def _q4_input_params(input_scale, what):
    """(multiplier, left shift, radius) of TFLM's int8 LOGISTIC/TANH Prepare (Q4.27 input)."""
    q, shift = math.frexp(_f32(input_scale) * float(1 << 27))
    mult = _round_half_away(q * (1 << 31))
    if not (0 <= shift <= 31 and mult < 1 << 31):
        raise ModelError("%s: input scale %g is outside the range TFLM's int8 kernel handles "
                         "(2**-28 .. 16)" % (what, input_scale))
    radius = math.floor(15.0 * (1 << 27) / (1 << shift))
    return mult, shift, radius


def _saturating_lut(input_scale, input_zero_point, what, inner):
    """The LUT of an op that saturates outside TFLM's input radius and applies `inner` to
    the input rescaled to Q4.27 everywhere else (LOGISTIC, TANH)."""
    mult, shift, radius = _q4_input_params(input_scale, what)
    out = []
    for q in _INPUTS:
        x = q - input_zero_point
        if x <= -radius:
            out.append(INT8_MIN)
        elif x >= radius:
            out.append(INT8_MAX)
        else:
            out.append(inner(multiply_by_quantized_multiplier(x, mult, shift)))
    return _table(out)


def _logistic(a):
    if a == 0:
        r = 1 << 30
    else:
        pos = _one_over_one_plus_x(_exp_on_negative_values(-abs(a), 4))
        r = pos if a > 0 else INT32_MAX - pos
    return _rdbpot(r, 23) - 128


def _tanh(a):
    # ExactMulByPot<1>: the same raw value read with 5 integer bits.
    t = 0 if a == 0 else _one_minus_x_over_one_plus_x(_exp_on_negative_values(-abs(a), 5))
    return _rdbpot(-t if a < 0 else t, 24)


def logistic_lut(input_scale, input_zero_point):
    """LOGISTIC int8 as TFLM's reference_integer_ops::Logistic (output 1/256, -128)."""
    return _saturating_lut(input_scale, input_zero_point, "logistic", _logistic)


def tanh_lut(input_scale, input_zero_point):
    """TANH int8 as TFLM's reference_integer_ops::Tanh (output 1/128, 0)."""
    return _saturating_lut(input_scale, input_zero_point, "tanh", _tanh)


# ---- 16x8 LOGISTIC and TANH: TFLM's interpolation in its sigmoid table --------------

def _checked_log2(x):
    """TFLM's CheckedLog2: (whether x is a power of two within 1e-3 in log2, the rounded log2)."""
    log = math.log2(x)
    return abs(log - round(log)) < 1e-3, round(log)


def sigmoid_s16_params(input_scale, output_scale, tanh):
    """(input_multiplier, input_left_shift) of 16x8 LOGISTIC (`tanh` False) or TANH, as TFLM's
    Prepare: the input rescaled to 1/(3 * 4096) per step, with a power-of-two scale's
    multiplier 0 resolved here to 3 << shift (the kernels then take one form). The kernels'
    x * multiplier + rounding stays in int32 for input_left_shift <= 30."""
    scale = _f32(input_scale)
    exact, log = _checked_log2(_f32(output_scale))
    if not (exact and log == -15):
        raise ModelError("int16 output must have scale 2^-15 (got %g)" % _f32(output_scale))
    if not scale > 0:
        raise ModelError("input scale must be > 0, got %r" % scale)
    pot, log = _checked_log2(scale)
    shift = 12 + log
    if pot and shift in ((0, 1) if tanh else (0,)):
        return 3 << shift, 0
    multiplier, shift = scale * 4096.0 * 3.0, 0
    while multiplier <= 32767.0 / 2.0 and shift <= 30:
        shift += 1
        multiplier *= 2.0
    if shift > 30 or not 1 <= int(multiplier) <= 32767:
        raise ModelError("input scale %g is outside what the int16 kernel rescales (%g to %g)"
                         % (scale, 2.0 ** -31, 32767 / 12288.0))
    return int(multiplier), shift


def requantize_params(input_scale, output_scale):
    """(multiplier, shift) of TFLM's QUANTIZE between integer types (reference_ops::Requantize)."""
    mult, shift = quantize_multiplier(_f32(input_scale) / _f32(output_scale))
    if not -31 <= shift <= 31:
        raise ModelError("quantize: rescaling factor %g is out of the int32 fixed-point range"
                         % (_f32(input_scale) / _f32(output_scale)))
    return mult, shift


def requantize_lut(input_scale, input_zero_point, output_scale, output_zero_point):
    """QUANTIZE int8 -> int8 as TFLM's reference_ops::Requantize."""
    mult, shift = requantize_params(input_scale, output_scale)
    return _table(multiply_by_quantized_multiplier(q - input_zero_point, mult, shift)
                  + output_zero_point for q in _INPUTS)


def requantize_s8_s16_lut(input_scale, input_zero_point, output_scale):
    """QUANTIZE int8 -> int16 (output zero point 0) as TFLM's Requantize: 256 int16 values."""
    mult, shift = requantize_params(input_scale, output_scale)
    return [min(max(multiply_by_quantized_multiplier(q - input_zero_point, mult, shift), INT16_MIN),
                INT16_MAX) for q in _INPUTS]


# ---- MEAN over height and width ---------------------------------------------------

def mean_params(input_scale, output_scale, count):
    """(multiplier, shift) of TFLM's int8 QuantizedMeanOrSum for a mean over `count` values.

    Prepare quantizes input_scale / output_scale (double); Eval folds 1/count into
    the multiplier with an int64 division and a clamped extra shift.
    """
    mult, shift = quantize_multiplier(_f32(input_scale) / _f32(output_scale))
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    if extra < 0 or shift > 31:
        raise ModelError("mean: rescaling factor is out of the int32 fixed-point range")
    return int((mult << extra) // count), shift - extra
