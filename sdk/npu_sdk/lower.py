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
                           output_zero_point, activation="NONE", out_depth=None):
    """Per-output-channel multipliers/shifts, offsets and clamp for an int8 FC.

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
    act_min, act_max = activation_range(activation, out_s, int(output_zero_point))
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
