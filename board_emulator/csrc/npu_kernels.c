/* npu_kernels.c - int8 NPU kernels, bit-exact with TFLite Micro's reference ops.
 * See npu_kernels.h for the contract; nothing here allocates or validates. */
#include "npu_kernels_internal.h"

#include <stddef.h>
#include <string.h>

/* ---- run-time instruction set choice ------------------------------------------ */

int npu_isa_supported(void) {
#if NPU_HAVE_X86_DISPATCH
    /* libgcc's check includes the OS enabling the AVX state (XGETBV). */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        return NPU_ISA_AVX2;
    }
#endif
    return NPU_ISA_SCALAR;
}

static int isa_level = -1; /* -1: not chosen yet */

int npu_isa_get(void) {
    if (isa_level < 0) {
        isa_level = npu_isa_supported();
    }
    return isa_level;
}

int npu_isa_set(int level) {
    const int best = npu_isa_supported();
    isa_level = level < NPU_ISA_SCALAR ? NPU_ISA_SCALAR : (level > best ? best : level);
    return isa_level;
}

static inline int32_t clamp_i32(int32_t x, int32_t lo, int32_t hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

/* ---- fully connected ------------------------------------------------------- */

/* Pure int8 x int8 -> int32 dot product: kept free of offsets and branches so
 * gcc -O3 turns it into widening multiply-adds (pmaddwd / sdot).
 * |sum| <= 128 * 128 * n, so n <= 131071 cannot overflow (the binding checks). */
static int32_t dot_s8(const int8_t *restrict a, const int8_t *restrict b, int32_t n) {
    int32_t acc = 0;
    for (int32_t i = 0; i < n; ++i) {
        acc += (int32_t)a[i] * (int32_t)b[i];
    }
    return acc;
}

static int32_t sum_s8(const int8_t *restrict a, int32_t n) {
    int32_t acc = 0;
    for (int32_t i = 0; i < n; ++i) {
        acc += a[i];
    }
    return acc;
}

size_t npu_fully_connected_scratch_size(int32_t batches, int32_t in_depth, int32_t out_depth) {
    (void)out_depth;
#if NPU_HAVE_X86_DISPATCH
    if (npu_isa_get() >= NPU_ISA_AVX2) {
        return npu_fully_connected_avx2_scratch(batches, in_depth);
    }
#else
    (void)batches, (void)in_depth;
#endif
    return 0;
}

void npu_fully_connected(const int8_t *input, const int8_t *weights, const int32_t *bias,
                         int8_t *output, const int32_t *mult, const int32_t *shift,
                         int32_t batches, int32_t in_depth, int32_t out_depth,
                         int32_t input_offset, int32_t output_offset,
                         int32_t act_min, int32_t act_max, void *scratch) {
#if NPU_HAVE_X86_DISPATCH
    if (scratch != NULL && npu_isa_get() >= NPU_ISA_AVX2) {
        npu_fully_connected_avx2(input, weights, bias, output, mult, shift, batches, in_depth,
                                 out_depth, input_offset, output_offset, act_min, act_max,
                                 scratch);
        return;
    }
#else
    (void)scratch;
#endif
    for (int32_t o = 0; o < out_depth; ++o) {
        const int8_t *w = weights + (size_t)o * (size_t)in_depth;
        /* sum_i (x_i + off) * w_i == dot(x, w) + off * sum_i w_i. TFLM sums the
         * left side in int32; in wrapping (mod 2^32) arithmetic the regrouping
         * gives the same bits, so the per-row constant is hoisted out of the
         * batch loop and the inner loop stays a plain int8 dot product. */
        const int32_t row_term =
            (int32_t)((uint32_t)input_offset * (uint32_t)sum_s8(w, in_depth));
        const int32_t base = npu_wrap_add(bias != NULL ? bias[o] : 0, row_term);
        for (int32_t b = 0; b < batches; ++b) {
            const int8_t *x = input + (size_t)b * (size_t)in_depth;
            int32_t acc = npu_wrap_add(base, dot_s8(x, w, in_depth));
            acc = npu_multiply_by_quantized_multiplier(acc, mult[o], shift[o]);
            acc = npu_wrap_add(acc, output_offset);
            output[(size_t)b * (size_t)out_depth + (size_t)o] =
                (int8_t)clamp_i32(acc, act_min, act_max);
        }
    }
}

/* TFLM's MultiplyByQuantizedMultiplier for int64 accumulators (16x8 kernels): the
 * multiplier rounded to 16 bits, one rounding shift; |x| < 2^47 keeps it in int64. */
static int32_t multiply_by_quantized_multiplier_s64(int64_t x, int32_t mult, int32_t shift) {
    const int64_t reduced = mult < 0x7FFF0000 ? (mult + (1 << 15)) >> 16 : 0x7FFF;
    const int32_t total_shift = 15 - shift;
    return (int32_t)((x * reduced + ((int64_t)1 << (total_shift - 1))) >> total_shift);
}

void npu_fully_connected_s16(const int16_t *input, const int8_t *weights, const int64_t *bias,
                             int16_t *output, const int32_t *mult, const int32_t *shift,
                             int32_t batches, int32_t in_depth, int32_t out_depth,
                             int32_t act_min, int32_t act_max) {
    for (int32_t b = 0; b < batches; ++b) {
        const int16_t *x = input + (size_t)b * (size_t)in_depth;
        for (int32_t o = 0; o < out_depth; ++o) {
            const int8_t *w = weights + (size_t)o * (size_t)in_depth;
            int64_t acc = bias != NULL ? bias[o] : 0;
            for (int32_t i = 0; i < in_depth; ++i) {
                acc += (int32_t)x[i] * (int32_t)w[i];
            }
            const int32_t y = multiply_by_quantized_multiplier_s64(acc, mult[o], shift[o]);
            output[(size_t)b * (size_t)out_depth + (size_t)o] = (int16_t)clamp_i32(y, act_min, act_max);
        }
    }
}

void npu_conv2d_s16(const int16_t *input, const int8_t *weights, const int64_t *bias,
                    int16_t *output, const int32_t *mult, const int32_t *shift,
                    const npu_window *g, int depthwise, int32_t act_min, int32_t act_max) {
    const size_t in_c = (size_t)g->in_c, out_c = (size_t)g->out_c;
    for (int32_t b = 0; b < g->batches; ++b) {
        const int16_t *image = input + (size_t)b * (size_t)g->in_h * (size_t)g->in_w * in_c;
        for (int32_t oy = 0; oy < g->out_h; ++oy) {
            for (int32_t ox = 0; ox < g->out_w; ++ox) {
                const int32_t y0 = oy * g->stride_h - g->pad_h, x0 = ox * g->stride_w - g->pad_w;
                int16_t *out = output + (((size_t)b * (size_t)g->out_h + (size_t)oy) *
                                         (size_t)g->out_w + (size_t)ox) * out_c;
                for (size_t o = 0; o < out_c; ++o) {
                    int64_t acc = bias != NULL ? bias[o] : 0;
                    for (int32_t ky = 0; ky < g->k_h; ++ky) {
                        const int32_t y = y0 + ky * g->dilation_h;
                        if (y < 0 || y >= g->in_h) {
                            continue; /* zero padding: zero point 0 contributes nothing */
                        }
                        for (int32_t kx = 0; kx < g->k_w; ++kx) {
                            const int32_t x = x0 + kx * g->dilation_w;
                            if (x < 0 || x >= g->in_w) {
                                continue;
                            }
                            const int16_t *px = image + ((size_t)y * (size_t)g->in_w + (size_t)x) * in_c;
                            const size_t tap = (size_t)ky * (size_t)g->k_w + (size_t)kx;
                            if (depthwise) {
                                acc += (int32_t)px[o / (size_t)g->depth_multiplier] *
                                       (int32_t)weights[tap * out_c + o];
                            } else {
                                const int8_t *w = weights + (o * (size_t)g->k_h * (size_t)g->k_w + tap) * in_c;
                                for (size_t ic = 0; ic < in_c; ++ic) {
                                    acc += (int32_t)px[ic] * (int32_t)w[ic];
                                }
                            }
                        }
                    }
                    const int32_t v = multiply_by_quantized_multiplier_s64(acc, mult[o], shift[o]);
                    out[o] = (int16_t)clamp_i32(v, act_min, act_max);
                }
            }
        }
    }
}

/* ---- softmax (gemmlowp fixed point) ------------------------------------------ */

/* Fixed-point formats below are named Qm: m integer bits, 31 - m fraction bits. */

/* exp(a) for a in [-1/4, 0), a and result in Q0: Taylor series around -1/8. */
static int32_t exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a) {
    const int32_t exp_minus_one_eighth = 1895147668; /* exp(-1/8) in Q0 */
    const int32_t one_third = 715827883;             /* 1/3 in Q0 */
    const int32_t x = a + (INT32_C(1) << 28);        /* a + 1/8 */
    const int32_t x2 = npu_sat_rounding_doubling_high_mul(x, x);
    const int32_t x3 = npu_sat_rounding_doubling_high_mul(x2, x);
    const int32_t x4 = npu_sat_rounding_doubling_high_mul(x2, x2);
    const int32_t x4_over_4 = npu_rounding_divide_by_pot(x4, 2);
    const int32_t poly = npu_rounding_divide_by_pot(
        npu_sat_rounding_doubling_high_mul(x4_over_4 + x3, one_third) + x2, 1);
    return exp_minus_one_eighth +
           npu_sat_rounding_doubling_high_mul(exp_minus_one_eighth, x + poly);
}

/* exp(a) for a <= 0, a in Q5 (the softmax scaled-diff format), result in Q0. */
static int32_t exp_on_negative_values_q5(int32_t a) {
    /* Barrel shifter: exp(-2^k) in Q0 for k = -2 .. 4, applied per set bit of
     * the whole-quarters part of -a. Bit k of the remainder sits at 26 + k. */
    static const int32_t exp_of_minus_pot[7] = {
        1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t one_quarter = INT32_C(1) << 24; /* 1/4 in Q5 */
    const int32_t a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)) - one_quarter;
    /* Q5 -> Q0 is a saturating left shift by 5. */
    int32_t result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        npu_saturating_shl(a_mod_quarter_minus_one_quarter, 5));
    const int32_t remainder =
        (int32_t)((uint32_t)a_mod_quarter_minus_one_quarter - (uint32_t)a);
    for (int k = 0; k < 7; ++k) {
        if (remainder & (INT32_C(1) << (24 + k))) {
            result = npu_sat_rounding_doubling_high_mul(result, exp_of_minus_pot[k]);
        }
    }
    return a == 0 ? INT32_MAX : result; /* exp(0) = 1 saturates to Q0's max */
}

/* 1 / (1 + a) for a in [0, 1), a and result in Q0: Newton-Raphson in Q2. */
static int32_t one_over_one_plus_x_for_x_in_0_1(int32_t a) {
    /* RoundingHalfSum(a, One): (a + 1) / 2 rounded away from zero, in 64 bits. */
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t one_q2 = INT32_C(1) << 29;
    int32_t x = 1515870810 /* 48/17 in Q2 */ +
                npu_sat_rounding_doubling_high_mul(half_denominator, -1010580540 /* -32/17 */);
    for (int i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x =
            npu_sat_rounding_doubling_high_mul(half_denominator, x);        /* Q2 */
        const int32_t one_minus = one_q2 - half_denominator_times_x;       /* Q2 */
        /* Q2 * Q2 = Q4; back to Q2 is a saturating left shift by 2. */
        x = x + npu_saturating_shl(npu_sat_rounding_doubling_high_mul(x, one_minus), 2);
    }
    /* x / 2 reinterpreted as Q1 (exact), then Q1 -> Q0: saturating shift by 1. */
    return npu_saturating_shl(x, 1);
}

static int count_leading_zeros_u32(uint32_t x) {
#if defined(__GNUC__)
    return x == 0 ? 32 : __builtin_clz(x);
#else
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while (!(x & UINT32_C(0x80000000))) {
        x <<= 1;
        ++n;
    }
    return n;
#endif
}

/* diff (<= 0, >= diff_min) scaled by beta * input_scale into Q5. */
static inline int32_t softmax_scaled_diff(int32_t diff, int32_t mult, int32_t left_shift) {
    return npu_sat_rounding_doubling_high_mul(npu_wrap_shl(diff, left_shift), mult);
}

void npu_softmax_s8(const int8_t *input, int8_t *output, int32_t rows, int32_t depth,
                    int32_t input_multiplier, int32_t input_left_shift, int32_t diff_min) {
    const int accumulation_integer_bits = 12; /* sum of exps held in Q12 */
    for (int32_t r = 0; r < rows; ++r) {
        const int8_t *x = input + (size_t)r * (size_t)depth;
        int8_t *y = output + (size_t)r * (size_t)depth;
        int32_t max_in_row = -128;
        int64_t sum64 = 0;
        for (int32_t c = 0; c < depth; ++c) {
            max_in_row = x[c] > max_in_row ? x[c] : max_in_row;
        }
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= diff_min) {
                const int32_t e = exp_on_negative_values_q5(
                    softmax_scaled_diff(diff, input_multiplier, input_left_shift));
                /* Q0 -> Q12: rounding right shift by 12. */
                sum64 += npu_rounding_divide_by_pot(e, accumulation_integer_bits);
            }
        }
        /* TFLM sums in int32; only rows deeper than 4095 could overflow it, and
         * TFLM aborts long before (see exponent below). Clamping to [1, max]
         * keeps the shifts below defined for any depth and any parameters
         * (a sum below 1 needs parameters lower.softmax_params never makes). */
        const int32_t sum_of_exps =
            sum64 > INT32_MAX ? INT32_MAX : (sum64 < 1 ? 1 : (int32_t)sum64);
        /* Reciprocal of the sum: normalise it to 1 + s with s in [0, 1) and
         * remember how many bits it had above 1.0. The max element always
         * contributes exp(0), so the sum is positive. */
        const int headroom_plus_one = count_leading_zeros_u32((uint32_t)sum_of_exps);
        const int num_bits_over_unit = accumulation_integer_bits - headroom_plus_one;
        const int32_t shifted_sum_minus_one = (int32_t)(
            ((uint32_t)sum_of_exps << headroom_plus_one) - (UINT32_C(1) << 31));
        const int32_t shifted_scale = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
        /* Q0 probability -> 8-bit output (scale 1/256). TFLM aborts when the
         * exponent exceeds 31 (exps summing to >= 512, e.g. 512 equal inputs);
         * every probability is then below 1/512 and rounds to 0, as here. */
        const int exponent = num_bits_over_unit + 31 - 8;
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            int32_t out = -128;
            if (diff >= diff_min) {
                const int32_t e = exp_on_negative_values_q5(
                    softmax_scaled_diff(diff, input_multiplier, input_left_shift));
                const int32_t p = npu_sat_rounding_doubling_high_mul(shifted_scale, e);
                const int32_t unsat = exponent > 31 ? 0 : npu_rounding_divide_by_pot(p, exponent);
                out = clamp_i32(unsat - 128, -128, 127);
            }
            y[c] = (int8_t)out;
        }
    }
}

/* ---- quantize / dequantize --------------------------------------------------- */

/* std::round on a float (ties away from zero) then int32, without libm.
 * TFLM's static_cast<int32_t> is undefined beyond int32; we saturate, which
 * is what Arm's VCVT does on the boards (NaN -> 0). */
static int32_t round_f32_to_i32_sat(float v) {
    if (!(v == v)) {
        return 0;
    }
    if (v >= 2147483520.0f) { /* largest float below 2^31 */
        return v >= 2147483648.0f ? INT32_MAX : (int32_t)v;
    }
    if (v <= -2147483648.0f) {
        return INT32_MIN;
    }
    {
        int32_t t = (int32_t)v; /* truncation toward zero */
        /* v - t is exact: it is v's fractional part, a multiple of v's ulp. */
        const float frac = v - (float)t;
        if (frac >= 0.5f) {
            ++t;
        } else if (frac <= -0.5f) {
            --t;
        }
        return t;
    }
}

void npu_quantize_f32_s8(const float *in, int8_t *out, int32_t n, float scale,
                         int32_t zero_point) {
    for (int32_t i = 0; i < n; ++i) {
        /* Divide in float (not by a precomputed reciprocal) like TFLM, so the
         * .5 ties land on the same side. Add the zero point in 64 bits so a
         * saturated quotient cannot wrap. */
        const int64_t q = (int64_t)round_f32_to_i32_sat(in[i] / scale) + zero_point;
        out[i] = (int8_t)(q < -128 ? -128 : (q > 127 ? 127 : q));
    }
}

void npu_dequantize_s8_f32(const int8_t *in, float *out, int32_t n, float scale,
                           int32_t zero_point) {
    /* TFLM multiplies in double then narrows. The double product of a float
     * and a small integer is exact, so this is one correctly rounded result. */
    const double s = (double)scale;
    for (int32_t i = 0; i < n; ++i) {
        out[i] = (float)(s * (double)((int64_t)in[i] - zero_point));
    }
}

void npu_quantize_f32_s16(const float *in, int16_t *out, int32_t n, float scale,
                          int32_t zero_point) {
    for (int32_t i = 0; i < n; ++i) {
        const int64_t q = (int64_t)round_f32_to_i32_sat(in[i] / scale) + zero_point;
        out[i] = (int16_t)(q < -32768 ? -32768 : (q > 32767 ? 32767 : q));
    }
}

void npu_dequantize_s16_f32(const int16_t *in, float *out, int32_t n, float scale,
                            int32_t zero_point) {
    const double s = (double)scale; /* float * 17-bit integer: exact in double */
    for (int32_t i = 0; i < n; ++i) {
        out[i] = (float)(s * (double)((int64_t)in[i] - zero_point));
    }
}

/* ---- convolution ------------------------------------------------------------ */

/* sum_i (x_i + offset) * w_i: widening multiply-adds that gcc -O3 vectorizes. */
static int32_t dot_s8_offset(const int8_t *restrict x, const int8_t *restrict w, int32_t n,
                             int32_t offset) {
    int32_t acc = 0;
    for (int32_t i = 0; i < n; ++i) {
        acc += ((int32_t)x[i] + offset) * (int32_t)w[i];
    }
    return acc;
}

static inline int8_t requantize_to_s8(int32_t acc, int32_t mult, int32_t shift,
                                      int32_t output_offset, int32_t act_min, int32_t act_max) {
    acc = npu_multiply_by_quantized_multiplier(acc, mult, shift);
    return (int8_t)clamp_i32(npu_wrap_add(acc, output_offset), act_min, act_max);
}

/* First and one-past-last filter tap whose input row/column lies in [0, size). */
static inline void valid_taps(int32_t origin, int32_t dilation, int32_t k, int32_t size,
                              int32_t *first, int32_t *end) {
    int32_t a = 0, b = k;
    while (a < k && origin + a * dilation < 0) {
        ++a;
    }
    while (b > a && origin + (b - 1) * dilation >= size) {
        --b;
    }
    *first = a;
    *end = b;
}

size_t npu_conv2d_s8_scratch_size(const npu_window *g) {
#if NPU_HAVE_X86_DISPATCH
    if (npu_isa_get() >= NPU_ISA_AVX2) {
        return npu_conv2d_s8_avx2_scratch(g);
    }
#else
    (void)g;
#endif
    return 0;
}

void npu_conv2d_s8(const int8_t *input, const int8_t *weights, const int32_t *bias,
                   int8_t *output, const int32_t *mult, const int32_t *shift,
                   const npu_window *g, int32_t input_offset, int32_t output_offset,
                   int32_t act_min, int32_t act_max, void *scratch) {
#if NPU_HAVE_X86_DISPATCH
    if (scratch != NULL && npu_isa_get() >= NPU_ISA_AVX2) {
        npu_conv2d_s8_avx2(input, weights, bias, output, mult, shift, g, input_offset,
                           output_offset, act_min, act_max, scratch);
        return;
    }
#else
    (void)scratch;
#endif
    const size_t in_c = (size_t)g->in_c, k_w = (size_t)g->k_w;
    const size_t filter_size = (size_t)g->k_h * k_w * in_c;
    int8_t *out = output;
    for (int32_t b = 0; b < g->batches; ++b) {
        const int8_t *image = input + (size_t)b * (size_t)g->in_h * (size_t)g->in_w * in_c;
        for (int32_t oy = 0; oy < g->out_h; ++oy) {
            const int32_t y0 = oy * g->stride_h - g->pad_h;
            int32_t ky0, ky1;
            valid_taps(y0, g->dilation_h, g->k_h, g->in_h, &ky0, &ky1);
            for (int32_t ox = 0; ox < g->out_w; ++ox) {
                const int32_t x0 = ox * g->stride_w - g->pad_w;
                int32_t kx0, kx1;
                valid_taps(x0, g->dilation_w, g->k_w, g->in_w, &kx0, &kx1);
                for (int32_t oc = 0; oc < g->out_c; ++oc) {
                    const int8_t *filter = weights + (size_t)oc * filter_size;
                    /* |sum| <= 255 * 128 * 65535 < 2^31: no overflow before the bias. */
                    int32_t acc = 0;
                    for (int32_t ky = ky0; ky < ky1; ++ky) {
                        const int8_t *row = image + (size_t)(y0 + ky * g->dilation_h) *
                                                        (size_t)g->in_w * in_c;
                        for (int32_t kx = kx0; kx < kx1; ++kx) {
                            acc += dot_s8_offset(row + (size_t)(x0 + kx * g->dilation_w) * in_c,
                                                 filter + ((size_t)ky * k_w + (size_t)kx) * in_c,
                                                 g->in_c, input_offset);
                        }
                    }
                    if (bias != NULL) {
                        acc = npu_wrap_add(acc, bias[oc]);
                    }
                    *out++ = requantize_to_s8(acc, mult[oc], shift[oc], output_offset, act_min,
                                              act_max);
                }
            }
        }
    }
}

#if NPU_HAVE_X86_DISPATCH
/* A depthwise convolution with depth multiplier dm is one with multiplier 1 on the input
 * with each channel repeated dm times (output channel ic * dm + m reads input channel ic):
 * the vector kernel runs on that copy, kept in the scratch after the kernel's own. */
static npu_window repeated_channels(const npu_window *g) {
    npu_window r = *g;
    r.in_c = g->out_c;
    r.depth_multiplier = 1;
    return r;
}

static size_t repeated_copy_offset(const npu_window *g) {
    const npu_window r = repeated_channels(g);
    return (npu_depthwise_conv2d_s8_avx2_scratch(&r) + 63) & ~(size_t)63;
}
#endif

size_t npu_depthwise_conv2d_s8_scratch_size(const npu_window *g) {
#if NPU_HAVE_X86_DISPATCH
    if (npu_isa_get() >= NPU_ISA_AVX2) {
        if (g->depth_multiplier == 1) {
            return npu_depthwise_conv2d_s8_avx2_scratch(g);
        }
        return repeated_copy_offset(g) +
               (size_t)g->batches * (size_t)g->in_h * (size_t)g->in_w * (size_t)g->out_c;
    }
#else
    (void)g;
#endif
    return 0;
}

void npu_depthwise_conv2d_s8(const int8_t *input, const int8_t *weights, const int32_t *bias,
                             int8_t *output, const int32_t *mult, const int32_t *shift,
                             const npu_window *g, int32_t input_offset, int32_t output_offset,
                             int32_t act_min, int32_t act_max, void *scratch) {
#if NPU_HAVE_X86_DISPATCH
    if (scratch != NULL && npu_isa_get() >= NPU_ISA_AVX2 && g->depth_multiplier == 1) {
        npu_depthwise_conv2d_s8_avx2(input, weights, bias, output, mult, shift, g,
                                     input_offset, output_offset, act_min, act_max, scratch);
        return;
    }
    if (scratch != NULL && npu_isa_get() >= NPU_ISA_AVX2) {
        const npu_window r = repeated_channels(g);
        const size_t pixels = (size_t)g->batches * (size_t)g->in_h * (size_t)g->in_w;
        const size_t in_c = (size_t)g->in_c, dm = (size_t)g->depth_multiplier;
        int8_t *copy = (int8_t *)scratch + repeated_copy_offset(g);
        for (size_t p = 0; p < pixels; ++p) {
            for (size_t ic = 0; ic < in_c; ++ic) {
                memset(copy + (p * in_c + ic) * dm, input[p * in_c + ic], dm);
            }
        }
        npu_depthwise_conv2d_s8_avx2(copy, weights, bias, output, mult, shift, &r,
                                     input_offset, output_offset, act_min, act_max, scratch);
        return;
    }
#else
    (void)scratch;
#endif
    enum { CHUNK = 64 }; /* output channels accumulated at once, on the stack */
    const size_t in_c = (size_t)g->in_c, out_c = (size_t)g->out_c;
    const int32_t dm = g->depth_multiplier;
    int32_t acc[CHUNK];
    int8_t *out = output;
    for (int32_t b = 0; b < g->batches; ++b) {
        const int8_t *image = input + (size_t)b * (size_t)g->in_h * (size_t)g->in_w * in_c;
        for (int32_t oy = 0; oy < g->out_h; ++oy) {
            const int32_t y0 = oy * g->stride_h - g->pad_h;
            int32_t ky0, ky1;
            valid_taps(y0, g->dilation_h, g->k_h, g->in_h, &ky0, &ky1);
            for (int32_t ox = 0; ox < g->out_w; ++ox) {
                const int32_t x0 = ox * g->stride_w - g->pad_w;
                int32_t kx0, kx1;
                valid_taps(x0, g->dilation_w, g->k_w, g->in_w, &kx0, &kx1);
                for (size_t c0 = 0; c0 < out_c; c0 += CHUNK) {
                    const size_t n = out_c - c0 < CHUNK ? out_c - c0 : CHUNK;
                    for (size_t j = 0; j < n; ++j) {
                        acc[j] = 0;
                    }
                    for (int32_t ky = ky0; ky < ky1; ++ky) {
                        for (int32_t kx = kx0; kx < kx1; ++kx) {
                            const int8_t *px = image +
                                ((size_t)(y0 + ky * g->dilation_h) * (size_t)g->in_w +
                                 (size_t)(x0 + kx * g->dilation_w)) * in_c;
                            const int8_t *w = weights +
                                ((size_t)ky * (size_t)g->k_w + (size_t)kx) * out_c + c0;
                            if (dm == 1) {
                                for (size_t j = 0; j < n; ++j) {
                                    acc[j] += ((int32_t)px[c0 + j] + input_offset) * w[j];
                                }
                            } else {
                                for (size_t j = 0; j < n; ++j) {
                                    acc[j] += ((int32_t)px[(c0 + j) / (size_t)dm] + input_offset) *
                                              w[j];
                                }
                            }
                        }
                    }
                    for (size_t j = 0; j < n; ++j) {
                        const size_t oc = c0 + j;
                        const int32_t a = bias != NULL ? npu_wrap_add(acc[j], bias[oc]) : acc[j];
                        out[oc] = requantize_to_s8(a, mult[oc], shift[oc], output_offset, act_min,
                                                   act_max);
                    }
                }
                out += out_c;
            }
        }
    }
}

/* ---- pooling ------------------------------------------------------------------ */

static void pool2d_s8(const int8_t *input, int8_t *output, const npu_window *g,
                      int32_t act_min, int32_t act_max, int average) {
    const size_t ch = (size_t)g->in_c;
    int8_t *out = output;
    for (int32_t b = 0; b < g->batches; ++b) {
        const int8_t *image = input + (size_t)b * (size_t)g->in_h * (size_t)g->in_w * ch;
        for (int32_t oy = 0; oy < g->out_h; ++oy) {
            const int32_t y0 = oy * g->stride_h - g->pad_h;
            int32_t ky0, ky1;
            valid_taps(y0, 1, g->k_h, g->in_h, &ky0, &ky1);
            for (int32_t ox = 0; ox < g->out_w; ++ox) {
                const int32_t x0 = ox * g->stride_w - g->pad_w;
                int32_t kx0, kx1;
                valid_taps(x0, 1, g->k_w, g->in_w, &kx0, &kx1);
                const int32_t count = (ky1 - ky0) * (kx1 - kx0);
                for (size_t c = 0; c < ch; ++c) {
                    int32_t acc = average ? 0 : -128;
                    for (int32_t ky = ky0; ky < ky1; ++ky) {
                        const int8_t *row = image + (size_t)(y0 + ky) * (size_t)g->in_w * ch + c;
                        for (int32_t kx = kx0; kx < kx1; ++kx) {
                            const int32_t v = row[(size_t)(x0 + kx) * ch];
                            if (average) {
                                acc += v;
                            } else if (v > acc) {
                                acc = v;
                            }
                        }
                    }
                    if (average) {
                        /* Round half away from zero; TFLM refuses empty windows and so
                         * does the caller, the guard only keeps this defined. */
                        if (count <= 0) {
                            acc = 0;
                        } else {
                            acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                        }
                    }
                    *out++ = (int8_t)clamp_i32(acc, act_min, act_max);
                }
            }
        }
    }
}

void npu_average_pool2d_s8(const int8_t *input, int8_t *output, const npu_window *g,
                           int32_t act_min, int32_t act_max) {
    pool2d_s8(input, output, g, act_min, act_max, 1);
}

void npu_max_pool2d_s8(const int8_t *input, int8_t *output, const npu_window *g,
                       int32_t act_min, int32_t act_max) {
    pool2d_s8(input, output, g, act_min, act_max, 0);
}

/* The int16 twin of pool2d_s8 (16x8 models), the same arithmetic. */
static void pool2d_s16(const int16_t *input, int16_t *output, const npu_window *g,
                      int32_t act_min, int32_t act_max, int average) {
    const size_t ch = (size_t)g->in_c;
    int16_t *out = output;
    for (int32_t b = 0; b < g->batches; ++b) {
        const int16_t *image = input + (size_t)b * (size_t)g->in_h * (size_t)g->in_w * ch;
        for (int32_t oy = 0; oy < g->out_h; ++oy) {
            const int32_t y0 = oy * g->stride_h - g->pad_h;
            int32_t ky0, ky1;
            valid_taps(y0, 1, g->k_h, g->in_h, &ky0, &ky1);
            for (int32_t ox = 0; ox < g->out_w; ++ox) {
                const int32_t x0 = ox * g->stride_w - g->pad_w;
                int32_t kx0, kx1;
                valid_taps(x0, 1, g->k_w, g->in_w, &kx0, &kx1);
                const int32_t count = (ky1 - ky0) * (kx1 - kx0);
                for (size_t c = 0; c < ch; ++c) {
                    int32_t acc = average ? 0 : -32768; /* |sum| < 2^15 * 65535 */
                    for (int32_t ky = ky0; ky < ky1; ++ky) {
                        const int16_t *row = image + (size_t)(y0 + ky) * (size_t)g->in_w * ch + c;
                        for (int32_t kx = kx0; kx < kx1; ++kx) {
                            const int32_t v = row[(size_t)(x0 + kx) * ch];
                            if (average) {
                                acc += v;
                            } else if (v > acc) {
                                acc = v;
                            }
                        }
                    }
                    if (average) {
                        /* Round half away from zero; TFLM refuses empty windows and so
                         * does the caller, the guard only keeps this defined. */
                        if (count <= 0) {
                            acc = 0;
                        } else {
                            acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                        }
                    }
                    *out++ = (int16_t)clamp_i32(acc, act_min, act_max);
                }
            }
        }
    }
}

void npu_average_pool2d_s16(const int16_t *input, int16_t *output, const npu_window *g,
                            int32_t act_min, int32_t act_max) {
    pool2d_s16(input, output, g, act_min, act_max, 1);
}

void npu_max_pool2d_s16(const int16_t *input, int16_t *output, const npu_window *g,
                        int32_t act_min, int32_t act_max) {
    pool2d_s16(input, output, g, act_min, act_max, 0);
}

/* ---- elementwise ADD / MUL ------------------------------------------------------ */

static inline int8_t add_one(int32_t a, int32_t b, const npu_arith *p) {
    const int32_t x1 = npu_wrap_shl(a + p->input1_offset, p->left_shift);
    const int32_t x2 = npu_wrap_shl(b + p->input2_offset, p->left_shift);
    const int32_t s1 = npu_multiply_by_quantized_multiplier(x1, p->input1_multiplier,
                                                            p->input1_shift);
    const int32_t s2 = npu_multiply_by_quantized_multiplier(x2, p->input2_multiplier,
                                                            p->input2_shift);
    const int32_t r = npu_multiply_by_quantized_multiplier(npu_wrap_add(s1, s2),
                                                           p->output_multiplier, p->output_shift);
    return (int8_t)clamp_i32(npu_wrap_add(r, p->output_offset), p->act_min, p->act_max);
}

static inline int8_t mul_one(int32_t a, int32_t b, const npu_arith *p) {
    const int32_t prod = (a + p->input1_offset) * (b + p->input2_offset);
    const int32_t r = npu_multiply_by_quantized_multiplier(prod, p->output_multiplier,
                                                           p->output_shift);
    return (int8_t)clamp_i32(npu_wrap_add(r, p->output_offset), p->act_min, p->act_max);
}

/* 16x8: zero points 0 (the offsets are 0), int16 in and out; the int8 arithmetic with
 * ADD's left shift 15, |x| << 15 and |x1 * x2| at most 2^30. */
static inline int16_t add_one_s16(int32_t a, int32_t b, const npu_arith *p) {
    const int32_t s1 = npu_multiply_by_quantized_multiplier(a * (1 << p->left_shift),
                                                            p->input1_multiplier, p->input1_shift);
    const int32_t s2 = npu_multiply_by_quantized_multiplier(b * (1 << p->left_shift),
                                                            p->input2_multiplier, p->input2_shift);
    const int32_t r = npu_multiply_by_quantized_multiplier(npu_wrap_add(s1, s2), p->output_multiplier,
                                                           p->output_shift);
    return (int16_t)clamp_i32(r, p->act_min, p->act_max);
}

static inline int16_t mul_one_s16(int32_t a, int32_t b, const npu_arith *p) {
    const int32_t r = npu_multiply_by_quantized_multiplier(a * b, p->output_multiplier,
                                                           p->output_shift);
    return (int16_t)clamp_i32(r, p->act_min, p->act_max);
}

#define NPU_ELEMENTWISE(name, one) NPU_ELEMENTWISE_T(name, one, int8_t)
#define NPU_ELEMENTWISE_T(name, one, T)                                                     \
    NPU_ELEMENTWISE_LINKAGE void name(const T *input1, const T *input2, T *output,          \
              const npu_arith *p) {                                                        \
        T *out = output;                                                                    \
        for (int32_t i0 = 0; i0 < p->dims[0]; ++i0) {                                       \
            for (int32_t i1 = 0; i1 < p->dims[1]; ++i1) {                                   \
                for (int32_t i2 = 0; i2 < p->dims[2]; ++i2) {                               \
                    const T *a = input1 + (size_t)i0 * (size_t)p->strides1[0] +              \
                                      (size_t)i1 * (size_t)p->strides1[1] +                 \
                                      (size_t)i2 * (size_t)p->strides1[2];                  \
                    const T *b = input2 + (size_t)i0 * (size_t)p->strides2[0] +              \
                                      (size_t)i1 * (size_t)p->strides2[1] +                 \
                                      (size_t)i2 * (size_t)p->strides2[2];                  \
                    const size_t sa = (size_t)p->strides1[3], sb = (size_t)p->strides2[3];  \
                    for (int32_t i3 = 0; i3 < p->dims[3]; ++i3) {                           \
                        *out++ = one(a[(size_t)i3 * sa], b[(size_t)i3 * sb], p);            \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    }

#define NPU_ELEMENTWISE_LINKAGE static
NPU_ELEMENTWISE(add_s8_portable, add_one)
#undef NPU_ELEMENTWISE_LINKAGE
#define NPU_ELEMENTWISE_LINKAGE
NPU_ELEMENTWISE(npu_mul_s8, mul_one)
NPU_ELEMENTWISE_T(npu_add_s16, add_one_s16, int16_t)
NPU_ELEMENTWISE_T(npu_mul_s16, mul_one_s16, int16_t)

void npu_add_s8(const int8_t *input1, const int8_t *input2, int8_t *output, const npu_arith *p) {
#if NPU_HAVE_X86_DISPATCH
    /* The common residual ADD: same shape, both inputs contiguous. */
    size_t n = 1;
    int contiguous = npu_isa_get() >= NPU_ISA_AVX2;
    for (int k = 3; k >= 0 && contiguous; --k) {
        contiguous = p->dims[k] == 1 ||
                     ((size_t)p->strides1[k] == n && (size_t)p->strides2[k] == n);
        n *= (size_t)p->dims[k];
    }
    if (contiguous) {
        size_t i = npu_add_s8_avx2_run(input1, input2, output, n, p);
        for (; i < n; ++i) {
            output[i] = add_one(input1[i], input2[i], p);
        }
        return;
    }
#endif
    add_s8_portable(input1, input2, output, p);
}

/* ---- 16x8 LOGISTIC and TANH ------------------------------------------------------ */

/* TFLM's int16 interpolation in sigmoid(i / 24) (0.16 fixed point, 256 entries), with
 * tanh(x) = 2 sigmoid(2x) - 1: LOGISTIC steps 2^9 per entry, TANH 2^8. The caller keeps
 * 1 <= mult <= 32767 and 0 <= left_shift <= 30, so x * mult + rounding fits int32. */
void npu_sigmoid_s16(const int16_t *input, const uint16_t *table, int16_t *output, int32_t n,
                     int32_t mult, int32_t left_shift, int tanh) {
    const int32_t round = left_shift > 0 ? (int32_t)1 << (left_shift - 1) : 0;
    const int step = tanh ? 8 : 9;
    const uint32_t frac_mask = (1u << step) - 1u;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t x = (input[i] * mult + round) >> left_shift;
        const uint32_t ax = (uint32_t)(x < 0 ? -x : x);
        const uint32_t k = ax >> step;
        /* int64: a table that is not increasing (a crafted blob) gives wrong values, never
         * undefined behaviour; TFLM's increasing one keeps r within 2^25 */
        int64_t r;
        if (k >= 255) {
            r = tanh ? 0xFFFF << 8 : 0x7FFF << 10;
        } else {
            r = ((int64_t)table[k] << step) +
                (int64_t)(ax & frac_mask) * ((int64_t)table[k + 1] - (int64_t)table[k]);
        }
        if (tanh) {
            r = x >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
            output[i] = (int16_t)(r >> 8);
        } else {
            r = x >= 0 ? r + (1 << 9) : (1 << 25) - r + (1 << 9) - 1;
            output[i] = (int16_t)(r >> 10);
        }
    }
}

/* ---- 16x8 RELU, RELU6, LEAKY_RELU -------------------------------------------------- */

void npu_rescale_s16(const int16_t *input, int16_t *output, int32_t n, int32_t pos_mult,
                     int32_t pos_shift, int32_t neg_mult, int32_t neg_shift, int32_t act_min,
                     int32_t act_max) {
    for (int32_t i = 0; i < n; ++i) {
        const int32_t x = input[i];
        const int32_t y = x >= 0 ? npu_multiply_by_quantized_multiplier(x, pos_mult, pos_shift)
                                 : npu_multiply_by_quantized_multiplier(x, neg_mult, neg_shift);
        output[i] = (int16_t)clamp_i32(y, act_min, act_max);
    }
}

/* ---- QUANTIZE between int8 and int16 ---------------------------------------------- */

void npu_lut_s8_s16(const int8_t *input, const int16_t *table, int16_t *output, int32_t n) {
    for (int32_t i = 0; i < n; ++i) {
        output[i] = table[(int32_t)input[i] + 128];
    }
}

void npu_requantize_s16_s8(const int16_t *input, int8_t *output, int32_t n, int32_t mult,
                           int32_t shift, int32_t output_offset) {
    for (int32_t i = 0; i < n; ++i) {
        const int32_t y = npu_multiply_by_quantized_multiplier(input[i], mult, shift);
        output[i] = (int8_t)clamp_i32(npu_wrap_add(y, output_offset), -128, 127);
    }
}

/* ---- 16x8 SOFTMAX ----------------------------------------------------------------- */

/* TFLM's int16 table lookup: 512 segments of 128 inputs, linear between lut[i], lut[i + 1]. */
static int16_t lookup_s16(int32_t value, const int16_t *lut) {
    const int32_t index = 256 + (value >> 7), offset = value & 0x7f;
    const int16_t slope = (int16_t)(lut[index + 1] - lut[index]);
    return (int16_t)(lut[index] + ((slope * offset + 64) >> 7));
}

void npu_softmax_s16(const int16_t *input, int16_t *output, const int16_t *exp_lut,
                     const int16_t *recip_lut, int32_t rows, int32_t depth, int32_t mult,
                     int32_t shift) {
    for (int32_t r = 0; r < rows; ++r) {
        const int16_t *x = input + (size_t)r * (size_t)depth;
        int16_t *y = output + (size_t)r * (size_t)depth; /* the exps first, as TFLM */
        int32_t max = -32768;
        for (int32_t c = 0; c < depth; ++c) {
            max = x[c] > max ? x[c] : max;
        }
        /* depth <= 65535 exps of at most 32767: the sum fits int32 */
        int32_t sum = 0;
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t d = npu_multiply_by_quantized_multiplier(x[c] - max, mult, shift);
            y[c] = lookup_s16(clamp_i32(npu_wrap_add(d, 32767), -32768, 32767), exp_lut);
            sum += y[c];
        }
        /* TFLM's exp table gives the row's max exp(0) = 32767, so 1 <= headroom_plus_one <= 17;
         * the clamp only keeps a crafted table's sum <= 0 from undefined shifts */
        int headroom_plus_one = count_leading_zeros_u32((uint32_t)sum);
        headroom_plus_one = headroom_plus_one < 1 ? 1 : headroom_plus_one > 31 ? 31 : headroom_plus_one;
        const int32_t shifted =
            (int32_t)(((int64_t)sum * ((int64_t)1 << (headroom_plus_one - 1)) + (1 << 13)) >> 14);
        const int16_t recip = lookup_s16(clamp_i32(shifted - (1 << 15) - (1 << 16), -32768, 32767),
                                         recip_lut);
        const int right_shift = 31 - headroom_plus_one;
        const int64_t round = right_shift > 0 ? (int64_t)1 << (right_shift - 1) : 0;
        for (int32_t c = 0; c < depth; ++c) {
            const int64_t v = ((int64_t)y[c] * recip + round) >> right_shift;
            y[c] = (int16_t)(v < 0 ? 0 : v > 32767 ? 32767 : v);
        }
    }
}

/* ---- lookup table, strided copy, mean ---------------------------------------- */

void npu_lut_s8(const int8_t *input, const int8_t *table, int8_t *output, int32_t n) {
    for (int32_t i = 0; i < n; ++i) {
        output[i] = table[(int32_t)input[i] + 128];
    }
}

void npu_copy_s8(const int8_t *input, int8_t *output, int32_t out_size, const npu_copy *p) {
    const size_t sa = (size_t)p->in_strides[3], sb = (size_t)p->out_strides[3];
    if (p->fill) {
        memset(output, (int8_t)p->fill_value, (size_t)out_size);
    }
    for (int32_t i0 = 0; i0 < p->dims[0]; ++i0) {
        for (int32_t i1 = 0; i1 < p->dims[1]; ++i1) {
            for (int32_t i2 = 0; i2 < p->dims[2]; ++i2) {
                const int8_t *a = input + (size_t)i0 * (size_t)p->in_strides[0] +
                                  (size_t)i1 * (size_t)p->in_strides[1] +
                                  (size_t)i2 * (size_t)p->in_strides[2];
                int8_t *b = output + (size_t)p->out_offset + (size_t)i0 * (size_t)p->out_strides[0] +
                            (size_t)i1 * (size_t)p->out_strides[1] +
                            (size_t)i2 * (size_t)p->out_strides[2];
                if (sa == 1 && sb == 1) { /* PAD and CONCATENATION rows: contiguous */
                    memcpy(b, a, (size_t)p->dims[3]);
                    continue;
                }
                for (int32_t i3 = 0; i3 < p->dims[3]; ++i3) {
                    b[(size_t)i3 * sb] = a[(size_t)i3 * sa];
                }
            }
        }
    }
}

void npu_mean_s16(const int16_t *input, int16_t *output, int32_t batches, int32_t in_h,
                  int32_t in_w, int32_t channels, int32_t multiplier, int32_t shift) {
    const size_t ch = (size_t)channels, count = (size_t)in_h * (size_t)in_w;
    for (int32_t b = 0; b < batches; ++b) {
        const int16_t *image = input + (size_t)b * count * ch;
        for (size_t c = 0; c < ch; ++c) {
            /* |x| <= 2^15 and count <= 65535: the sum fits int32. */
            int32_t acc = 0;
            for (size_t k = 0; k < count; ++k) {
                acc += image[k * ch + c];
            }
            output[(size_t)b * ch + c] = (int16_t)clamp_i32(
                npu_multiply_by_quantized_multiplier(acc, multiplier, shift), -32768, 32767);
        }
    }
}

void npu_mean_s8(const int8_t *input, int8_t *output, int32_t batches, int32_t in_h,
                 int32_t in_w, int32_t channels, int32_t input_offset, int32_t multiplier,
                 int32_t shift, int32_t output_offset) {
    const size_t ch = (size_t)channels, count = (size_t)in_h * (size_t)in_w;
    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *image = input + (size_t)b * count * ch;
        for (size_t c = 0; c < ch; ++c) {
            /* |x + input_offset| <= 256 and count <= 2^23: the sum fits int32. */
            int32_t acc = 0;
            for (size_t k = 0; k < count; ++k) {
                acc += (int32_t)image[k * ch + c] + input_offset;
            }
            acc = npu_multiply_by_quantized_multiplier(acc, multiplier, shift);
            output[(size_t)b * ch + c] =
                (int8_t)clamp_i32(npu_wrap_add(acc, output_offset), -128, 127);
        }
    }
}
