/* npu_kernels.h - int8 NPU kernels, bit-exact with TFLite Micro's reference ops.
 *
 * Plain C99 on raw pointers and sizes: no Python API, no allocation, no checks.
 * Callers (the CPython binding _kernels.c, or a MicroPython user C module)
 * validate sizes once; these functions trust what they are given.
 *
 * Quantization parameters come from npu_sdk.lower on the host.
 */
#ifndef NPU_KERNELS_H
#define NPU_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* output[b, o] = clamp(requant(bias[o] + sum_i (input[b, i] + input_offset) * weights[o, i])
 *                      + output_offset, act_min, act_max)
 * input: [batches, in_depth], weights: [out_depth, in_depth] (symmetric, zero point 0),
 * bias: [out_depth] or NULL, output: [batches, out_depth],
 * mult/shift: one per output channel (replicate for per-tensor weights). */
void npu_fully_connected(const int8_t *input, const int8_t *weights, const int32_t *bias,
                         int8_t *output, const int32_t *mult, const int32_t *shift,
                         int32_t batches, int32_t in_depth, int32_t out_depth,
                         int32_t input_offset, int32_t output_offset,
                         int32_t act_min, int32_t act_max);

/* Softmax over the last axis of [rows, depth]; output scale 1/256, zero point -128. */
void npu_softmax_s8(const int8_t *input, int8_t *output, int32_t rows, int32_t depth,
                    int32_t input_multiplier, int32_t input_left_shift, int32_t diff_min);

/* out = clamp(round_half_away(in / scale) + zero_point, -128, 127), division in float. */
void npu_quantize_f32_s8(const float *in, int8_t *out, int32_t n, float scale,
                         int32_t zero_point);

/* out = (float)((double)scale * (in - zero_point)). */
void npu_dequantize_s8_f32(const int8_t *in, float *out, int32_t n, float scale,
                           int32_t zero_point);

/* ---- shared fixed-point helpers (gemmlowp / TFLite semantics) ---------------- */

/* Wrapping int32 add/shift: TFLM relies on two's-complement wrap in a few
 * corners; doing it in uint32 gives the same bits without C undefined behaviour. */
static inline int32_t npu_wrap_add(int32_t a, int32_t b) {
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static inline int32_t npu_wrap_shl(int32_t x, int shift) {
    return (int32_t)((uint32_t)x << shift);
}

/* round(a * b / 2^31), saturating the single overflow case INT32_MIN * INT32_MIN. */
static inline int32_t npu_sat_rounding_doubling_high_mul(int32_t a, int32_t b) {
    int64_t ab, nudge;
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? (INT64_C(1) << 30) : (1 - (INT64_C(1) << 30));
    /* C99 '/' truncates toward zero, exactly like the C++ reference. */
    return (int32_t)((ab + nudge) / (INT64_C(1) << 31));
}

/* x / 2^exponent rounded to nearest, ties away from zero; 0 <= exponent <= 31. */
static inline int32_t npu_rounding_divide_by_pot(int32_t x, int exponent) {
    const int32_t mask = (int32_t)((INT64_C(1) << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * 2^exponent saturated to int32 (gemmlowp SaturatingRoundingMultiplyByPOT
 * with a positive exponent); 1 <= exponent <= 30. */
static inline int32_t npu_saturating_shl(int32_t x, int exponent) {
    const int32_t threshold = (int32_t)((INT32_C(1) << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return npu_wrap_shl(x, exponent);
}

/* TFLite MultiplyByQuantizedMultiplier, double-rounding variant (the default
 * build, i.e. without TFLITE_SINGLE_ROUNDING); -31 <= shift <= 31. */
static inline int32_t npu_multiply_by_quantized_multiplier(int32_t x, int32_t mult,
                                                           int32_t shift) {
    const int left_shift = shift > 0 ? (int)shift : 0;
    const int right_shift = shift > 0 ? 0 : (int)-shift;
    return npu_rounding_divide_by_pot(
        npu_sat_rounding_doubling_high_mul(npu_wrap_shl(x, left_shift), mult), right_shift);
}

#ifdef __cplusplus
}
#endif

#endif /* NPU_KERNELS_H */
