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

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- instruction sets and scratch memory ------------------------------------------
 * The MAC-heavy kernels (fully connected, conv, depthwise) have SIMD twins chosen at
 * run time (x86: AVX2 when the CPU and OS support it), bit-identical to the portable
 * C. A twin runs only when the caller passes scratch memory of at least the size the
 * matching *_scratch_size function returns (0 means: none needed, pass NULL); with
 * NULL scratch the portable code runs. Scratch needs no alignment. */
enum { NPU_ISA_SCALAR = 0, NPU_ISA_AVX2 = 1 };

/* The best level this CPU runs (NPU_ISA_SCALAR where no twin is built). */
int npu_isa_supported(void);
/* The level the kernels use: starts at npu_isa_supported(); npu_isa_set clamps the
 * request to it and returns the level in effect. Not meant to change mid-inference. */
int npu_isa_get(void);
int npu_isa_set(int level);

size_t npu_fully_connected_scratch_size(int32_t batches, int32_t in_depth, int32_t out_depth);

/* output[b, o] = clamp(requant(bias[o] + sum_i (input[b, i] + input_offset) * weights[o, i])
 *                      + output_offset, act_min, act_max)
 * input: [batches, in_depth], weights: [out_depth, in_depth] (symmetric, zero point 0),
 * bias: [out_depth] or NULL, output: [batches, out_depth],
 * mult/shift: one per output channel (replicate for per-tensor weights). */
void npu_fully_connected(const int8_t *input, const int8_t *weights, const int32_t *bias,
                         int8_t *output, const int32_t *mult, const int32_t *shift,
                         int32_t batches, int32_t in_depth, int32_t out_depth,
                         int32_t input_offset, int32_t output_offset,
                         int32_t act_min, int32_t act_max, void *scratch);

/* 16x8 fully connected (int16 activations, zero points 0; int8 weights; int64 bias or
 * NULL): output[b, o] = clamp(requant64(bias[o] + sum_i input[b, i] * weights[o, i]),
 * act_min, act_max), accumulated in int64 as TFLM's reference_integer_ops. shift in
 * [-31, 7]; |accumulator| < 2^47 (in_depth < 2^25). */
void npu_fully_connected_s16(const int16_t *input, const int8_t *weights, const int64_t *bias,
                             int16_t *output, const int32_t *mult, const int32_t *shift,
                             int32_t batches, int32_t in_depth, int32_t out_depth,
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

/* The same for int16 (16x8 models' float edges): clamp to [-32768, 32767]. */
void npu_quantize_f32_s16(const float *in, int16_t *out, int32_t n, float scale,
                          int32_t zero_point);
void npu_dequantize_s16_f32(const int16_t *in, float *out, int32_t n, float scale,
                            int32_t zero_point);

/* Window geometry of CONV_2D, DEPTHWISE_CONV_2D and the pools (NHWC, batch-major).
 * pad_h/pad_w are the top/left padding; trailing padding is implied by out_h/out_w.
 * The caller guarantees (out - 1) * stride + (k - 1) * dilation and pad stay below
 * 2^30, so window coordinates never overflow int32. */
typedef struct {
    int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c;
    int32_t k_h, k_w, stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w;
    int32_t depth_multiplier; /* depthwise only: out_c == in_c * depth_multiplier */
} npu_window;

size_t npu_conv2d_s8_scratch_size(const npu_window *g);
size_t npu_depthwise_conv2d_s8_scratch_size(const npu_window *g);

/* int8 CONV_2D, per-channel requantization. weights: [out_c, k_h, k_w, in_c] (OHWI,
 * zero point 0), bias: [out_c] or NULL, mult/shift: [out_c]. Input positions outside
 * the image contribute nothing (zero padding in the real domain).
 * Caller guarantees k_h * k_w * in_c <= 65535 and -128 <= input_offset <= 128. */
void npu_conv2d_s8(const int8_t *input, const int8_t *weights, const int32_t *bias,
                   int8_t *output, const int32_t *mult, const int32_t *shift,
                   const npu_window *g, int32_t input_offset, int32_t output_offset,
                   int32_t act_min, int32_t act_max, void *scratch);

/* int8 DEPTHWISE_CONV_2D: output channel oc = ic * depth_multiplier + m reads input
 * channel ic. weights: [1, k_h, k_w, out_c]; otherwise as npu_conv2d_s8, with
 * k_h * k_w <= 65535. */
void npu_depthwise_conv2d_s8(const int8_t *input, const int8_t *weights, const int32_t *bias,
                             int8_t *output, const int32_t *mult, const int32_t *shift,
                             const npu_window *g, int32_t input_offset, int32_t output_offset,
                             int32_t act_min, int32_t act_max, void *scratch);

/* 16x8 CONV_2D (depthwise = 0) or DEPTHWISE_CONV_2D (1): int16 activations (zero points
 * 0), int8 weights laid out as the int8 kernels', int64 bias or NULL, int64 accumulators
 * requantized as npu_fully_connected_s16. Caller guarantees shift in [-31, 7], |bias| <=
 * 2^46 and k_h * k_w * in_c <= 65535. */
void npu_conv2d_s16(const int16_t *input, const int8_t *weights, const int64_t *bias,
                    int16_t *output, const int32_t *mult, const int32_t *shift,
                    const npu_window *g, int depthwise, int32_t act_min, int32_t act_max);

/* int8 AVERAGE_POOL_2D over the window clipped to the image (rounded half away from
 * zero), and MAX_POOL_2D; input and output share quantization; in_c == out_c.
 * Caller guarantees every window overlaps the image. */
void npu_average_pool2d_s8(const int8_t *input, int8_t *output, const npu_window *g,
                           int32_t act_min, int32_t act_max);
void npu_max_pool2d_s8(const int8_t *input, int8_t *output, const npu_window *g,
                       int32_t act_min, int32_t act_max);
/* The same for int16 (16x8); caller guarantees k_h * k_w <= 65535 (int32 sums). */
void npu_average_pool2d_s16(const int16_t *input, int16_t *output, const npu_window *g,
                            int32_t act_min, int32_t act_max);
void npu_max_pool2d_s16(const int16_t *input, int16_t *output, const npu_window *g,
                        int32_t act_min, int32_t act_max);

/* Elementwise int8 ADD / MUL over a 4-D output dims[0..3]; input k is read at
 * sum_d index_d * strides_k[d] (stride 0 broadcasts). TFLite's arithmetic params. */
typedef struct {
    int32_t dims[4], strides1[4], strides2[4];
    int32_t input1_offset, input2_offset, left_shift;
    int32_t input1_multiplier, input1_shift, input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift, output_offset, act_min, act_max;
} npu_arith;

void npu_add_s8(const int8_t *input1, const int8_t *input2, int8_t *output, const npu_arith *p);
void npu_mul_s8(const int8_t *input1, const int8_t *input2, int8_t *output, const npu_arith *p);
/* 16x8 ADD and MUL: int16 in and out, zero points 0 (offsets ignored), ADD's left_shift 15. */
void npu_add_s16(const int16_t *input1, const int16_t *input2, int16_t *output,
                 const npu_arith *p);
void npu_mul_s16(const int16_t *input1, const int16_t *input2, int16_t *output,
                 const npu_arith *p);

/* 16x8 RELU, RELU6, LEAKY_RELU (zero points 0): x rescaled by the pos pair (x >= 0) or the
 * neg pair, clamped to [act_min, act_max]. Caller guarantees shifts in [-31, 31]. */
void npu_rescale_s16(const int16_t *input, int16_t *output, int32_t n, int32_t pos_mult,
                     int32_t pos_shift, int32_t neg_mult, int32_t neg_shift, int32_t act_min,
                     int32_t act_max);

/* QUANTIZE int8 -> int16: output[i] = table[input[i] + 128] (npu_sdk.lower.requantize_s8_s16_lut);
 * int16 (zero point 0) -> int8 as TFLM's Requantize. Caller guarantees -31 <= shift <= 31. */
void npu_lut_s8_s16(const int8_t *input, const int16_t *table, int16_t *output, int32_t n);
void npu_requantize_s16_s8(const int16_t *input, int8_t *output, int32_t n, int32_t mult,
                           int32_t shift, int32_t output_offset);

/* 16x8 SOFTMAX over rows of `depth` int16 values as TFLM: exp and 1 / (1 + x) interpolated
 * in int16[513] tables (npu_sdk.lower.softmax_s16_luts), output Q0.15. Caller guarantees
 * 1 <= depth <= 65535, -31 <= shift <= 31; input and output may not overlap. */
void npu_softmax_s16(const int16_t *input, int16_t *output, const int16_t *exp_lut,
                     const int16_t *recip_lut, int32_t rows, int32_t depth, int32_t mult,
                     int32_t shift);

/* 16x8 LOGISTIC (tanh 0) and TANH (tanh 1) as TFLM: interpolation in `table`, sigmoid(i / 24)
 * in 0.16 fixed point (npu_sdk.tables16); output Q0.15. Caller guarantees
 * 1 <= mult <= 32767 and 0 <= left_shift <= 30. */
void npu_sigmoid_s16(const int16_t *input, const uint16_t *table, int16_t *output, int32_t n,
                     int32_t mult, int32_t left_shift, int tanh);

/* out[i] = table[in[i] + 128]: every int8 -> int8 pointwise op, the table computed
 * on the host with TFLM's integer arithmetic (npu_sdk.lower.*_lut). */
void npu_lut_s8(const int8_t *input, const int8_t *table, int8_t *output, int32_t n);

/* Strided 4-D copy: output[out_offset + sum_k i_k * out_strides[k]] =
 * input[sum_k i_k * in_strides[k]] for 0 <= i_k < dims[k] (PAD, CONCATENATION).
 * With fill != 0 the first out_size output bytes are set to fill_value first. */
typedef struct {
    int32_t dims[4], in_strides[4], out_strides[4];
    int32_t out_offset, fill, fill_value;
} npu_copy;

void npu_copy_s8(const int8_t *input, int8_t *output, int32_t out_size, const npu_copy *p);

/* Mean over height and width of NHWC int8 into [batches, channels], as TFLM's
 * QuantizedMeanOrSum: sum of (x + input_offset), times multiplier/shift (1/count
 * folded in by the host), plus output_offset, clamped to int8.
 * Caller guarantees in_h * in_w <= 2^23 and -31 <= shift <= 31. */
/* 16x8 MEAN: as npu_mean_s8 with zero points 0, clamped to int16; caller guarantees
 * in_h * in_w <= 65535 and -31 <= shift <= 31. */
void npu_mean_s16(const int16_t *input, int16_t *output, int32_t batches, int32_t in_h,
                  int32_t in_w, int32_t channels, int32_t multiplier, int32_t shift);
void npu_mean_s8(const int8_t *input, int8_t *output, int32_t batches, int32_t in_h,
                 int32_t in_w, int32_t channels, int32_t input_offset, int32_t multiplier,
                 int32_t shift, int32_t output_offset);

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
