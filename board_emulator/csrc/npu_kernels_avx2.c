/* npu_kernels_avx2.c - AVX2 twins of the MAC-heavy kernels in npu_kernels.c.
 *
 * Compiled for any x86-64 (no -mavx2 for the file): every function here carries the
 * avx2 target through the pragma below, and npu_kernels.c calls them only after
 * __builtin_cpu_supports("avx2"). Same contract and same bits as the portable code:
 *
 *  - products are exact in int16 lanes: (x + input_offset) is in [-255, 255], weights
 *    in [-128, 127], so vpmaddwd (int16 x int16 -> pairwise int32 sums) never
 *    saturates (it only can for 0x8000 * 0x8000 twice), and padding taps hold
 *    x + offset = 0, i.e. contribute nothing, as in the reference;
 *  - int32 sums wrap like the reference's (mod 2^32, the same order-independent bits);
 *  - requantization is TFLite's MultiplyByQuantizedMultiplier lane by lane, see
 *    requant8 (SaturatingRoundingDoublingHighMul reduces to floor((a*b + 2^30) / 2^31)
 *    for both signs, plus the INT32_MIN * INT32_MIN saturation).
 *
 * Scratch memory comes from the caller (sizes from npu_kernels_avx2_*_scratch). */
#include "npu_kernels_internal.h"

#if NPU_HAVE_X86_DISPATCH

#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif

#define ALIGN_UP(n, a) (((n) + ((size_t)(a) - 1)) & ~((size_t)(a) - 1))

/* ---- helpers --------------------------------------------------------------- */

static inline __m256i load_si256(const void *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

static inline int32_t load_i32(const int16_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Per-channel requantization constants, padded to whole vectors. */
typedef struct {
    int32_t *bias, *mult, *lsh, *rsh;
} requant_tables;

static void fill_tables(requant_tables *t, const int32_t *bias, const int32_t *mult,
                        const int32_t *shift, size_t n, size_t padded) {
    for (size_t i = 0; i < padded; ++i) {
        const int32_t s = i < n ? shift[i] : 0;
        t->bias[i] = (i < n && bias != NULL) ? bias[i] : 0;
        t->mult[i] = i < n ? mult[i] : 0;
        t->lsh[i] = s > 0 ? s : 0;
        t->rsh[i] = s > 0 ? 0 : -s;
    }
}

/* round(a * b / 2^31) per int32 lane with gemmlowp's saturation. */
static inline __m256i srdhm8(__m256i a, __m256i b) {
    const __m256i half = _mm256_set1_epi64x(INT64_C(1) << 30);
    const __m256i min = _mm256_set1_epi32(INT32_MIN);
    /* floor((ab + 2^30) / 2^31): bits 31..62 of the 64-bit sum */
    __m256i even = _mm256_add_epi64(_mm256_mul_epi32(a, b), half);
    __m256i odd = _mm256_add_epi64(
        _mm256_mul_epi32(_mm256_srli_epi64(a, 32), _mm256_srli_epi64(b, 32)), half);
    even = _mm256_srli_epi64(even, 31);
    odd = _mm256_slli_epi64(odd, 1);
    {
        const __m256i r = _mm256_blend_epi32(even, odd, 0xAA);
        const __m256i sat = _mm256_and_si256(_mm256_cmpeq_epi32(a, min), _mm256_cmpeq_epi32(b, min));
        return _mm256_blendv_epi8(r, _mm256_set1_epi32(INT32_MAX), sat);
    }
}

/* x / 2^e rounded half away from zero, e in [0, 31] per lane. */
static inline __m256i rdbp8(__m256i x, __m256i e) {
    const __m256i one = _mm256_set1_epi32(1);
    const __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, e), one);
    const __m256i rem = _mm256_and_si256(x, mask);
    const __m256i thr = _mm256_sub_epi32(_mm256_srli_epi32(mask, 1),
                                         _mm256_cmpgt_epi32(_mm256_setzero_si256(), x));
    return _mm256_sub_epi32(_mm256_srav_epi32(x, e), _mm256_cmpgt_epi32(rem, thr));
}

/* acc + bias, requantized, + output offset, clamped: 8 int8 in the low half. */
static inline __m128i requant8(__m256i acc, const requant_tables *t, size_t c, __m256i out_off,
                               __m256i lo, __m256i hi) {
    __m256i x = _mm256_add_epi32(acc, load_si256(t->bias + c));
    x = _mm256_sllv_epi32(x, load_si256(t->lsh + c));
    x = srdhm8(x, load_si256(t->mult + c));
    x = rdbp8(x, load_si256(t->rsh + c));
    x = _mm256_add_epi32(x, out_off);
    x = _mm256_min_epi32(_mm256_max_epi32(x, lo), hi);
    {
        const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
        return _mm_packs_epi16(w, w);
    }
}

static inline void store_n(int8_t *dst, __m128i v, size_t n) {
    if (n >= 8) {
        _mm_storel_epi64((__m128i *)dst, v);
    } else {
        int8_t tmp[16];
        _mm_storeu_si128((__m128i *)tmp, v);
        memcpy(dst, tmp, n);
    }
}

/* dst[i] = src[i] + offset as int16, for a run of n bytes. */
static inline void widen_run(int16_t *dst, const int8_t *src, size_t n, int32_t offset) {
    const __m256i off = _mm256_set1_epi16((int16_t)offset);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i v = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_add_epi16(v, off));
    }
    if (i + 8 <= n) {
        const __m128i v = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(src + i)));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_add_epi16(v, _mm256_castsi256_si128(off)));
        i += 8;
    }
    for (; i < n; ++i) {
        dst[i] = (int16_t)(src[i] + offset);
    }
}

static inline int32_t hsum8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* Carve 32-byte aligned pieces out of the caller's scratch. */
static inline void *take(unsigned char **cursor, size_t bytes) {
    unsigned char *p = (unsigned char *)ALIGN_UP((uintptr_t)*cursor, 32);
    *cursor = p + bytes;
    return p;
}

/* ---- convolution as a GEMM over im2col patches ------------------------------------
 * M = output pixels, N = out_c, K = k_h * k_w * in_c. Patches hold (x + input_offset)
 * as int16 (0 at padding taps), K rounded up to pairs; weights are packed per block of
 * 8 output channels as [K/2][8][2] int16, so one vpmaddwd of a broadcast input pair
 * with a packed row adds two taps to 8 channels. Micro-kernel: 4 pixels x 16 channels. */

enum { MR = 4, TILE = 16 /* pixels whose patches are built at once, multiple of MR */ };

static size_t conv_dims(const npu_window *g, size_t *k2, size_t *np) {
    const size_t k = (size_t)g->k_h * (size_t)g->k_w * (size_t)g->in_c;
    *k2 = (k + 1) / 2;
    *np = ALIGN_UP((size_t)g->out_c, 16);
    return k;
}

size_t npu_conv2d_s8_avx2_scratch(const npu_window *g) {
    size_t k2, np;
    conv_dims(g, &k2, &np);
    return 7 * 32 + 4 * np * sizeof(int32_t) + np * k2 * 2 * sizeof(int16_t) +
           TILE * k2 * 2 * sizeof(int16_t);
}

static void build_patch(int16_t *dst, const int8_t *image, const npu_window *g, int32_t oy,
                        int32_t ox, int32_t input_offset, size_t k) {
    const size_t in_c = (size_t)g->in_c, row_len = (size_t)g->k_w * in_c;
    const int32_t y0 = oy * g->stride_h - g->pad_h, x0 = ox * g->stride_w - g->pad_w;
    int32_t kx0 = 0, kx1 = g->k_w;
    while (kx0 < g->k_w && x0 + kx0 * g->dilation_w < 0) {
        ++kx0;
    }
    while (kx1 > kx0 && x0 + (kx1 - 1) * g->dilation_w >= g->in_w) {
        --kx1;
    }
    for (int32_t ky = 0; ky < g->k_h; ++ky) {
        int16_t *d = dst + (size_t)ky * row_len;
        const int32_t iy = y0 + ky * g->dilation_h;
        if (iy < 0 || iy >= g->in_h || kx0 >= kx1) {
            memset(d, 0, row_len * sizeof(int16_t));
            continue;
        }
        if (kx0 > 0) {
            memset(d, 0, (size_t)kx0 * in_c * sizeof(int16_t));
        }
        if (kx1 < g->k_w) {
            memset(d + (size_t)kx1 * in_c, 0, (size_t)(g->k_w - kx1) * in_c * sizeof(int16_t));
        }
        {
            const int8_t *row = image + (size_t)iy * (size_t)g->in_w * in_c;
            if (g->dilation_w == 1) {
                widen_run(d + (size_t)kx0 * in_c, row + (size_t)(x0 + kx0) * in_c,
                          (size_t)(kx1 - kx0) * in_c, input_offset);
            } else {
                for (int32_t kx = kx0; kx < kx1; ++kx) {
                    widen_run(d + (size_t)kx * in_c,
                              row + (size_t)(x0 + kx * g->dilation_w) * in_c, in_c, input_offset);
                }
            }
        }
    }
    if (k & 1) {
        dst[k] = 0;
    }
}

/* wp[block][k2][8][2] = weights[8 block + j][2 k2 + {0, 1}], zero past K and N. Whole
 * blocks of 8 rows x 16 taps go through an 8x8 transpose of int16 pairs. */
static void pack_weights(int16_t *wp, const int8_t *weights, size_t out_c, size_t np, size_t k,
                         size_t k2) {
    const size_t k16 = k & ~(size_t)15;
    for (size_t blk = 0; blk < np / 8; ++blk) {
        int16_t *dst = wp + blk * k2 * 16;
        const size_t full = blk * 8 + 8 <= out_c ? k16 : 0;
        for (size_t kk = 0; kk < full; kk += 16) {
            __m256i v[8], t[8], u[8];
            for (size_t j = 0; j < 8; ++j) {
                v[j] = _mm256_cvtepi8_epi16(
                    _mm_loadu_si128((const __m128i *)(weights + (blk * 8 + j) * k + kk)));
            }
            for (size_t j = 0; j < 8; j += 2) {
                t[j] = _mm256_unpacklo_epi32(v[j], v[j + 1]);
                t[j + 1] = _mm256_unpackhi_epi32(v[j], v[j + 1]);
            }
            for (size_t j = 0; j < 8; j += 4) {
                u[j] = _mm256_unpacklo_epi64(t[j], t[j + 2]);
                u[j + 1] = _mm256_unpackhi_epi64(t[j], t[j + 2]);
                u[j + 2] = _mm256_unpacklo_epi64(t[j + 1], t[j + 3]);
                u[j + 3] = _mm256_unpackhi_epi64(t[j + 1], t[j + 3]);
            }
            /* u[0..3]: pairs 0,1,2,3 (lane 0) and 4,5,6,7 (lane 1) of rows 0-3; u[4..7]: rows 4-7 */
            for (size_t q = 0; q < 4; ++q) {
                _mm256_storeu_si256((__m256i *)(dst + (kk / 2 + q) * 16),
                                    _mm256_permute2x128_si256(u[q], u[q + 4], 0x20));
                _mm256_storeu_si256((__m256i *)(dst + (kk / 2 + q + 4) * 16),
                                    _mm256_permute2x128_si256(u[q], u[q + 4], 0x31));
            }
        }
        for (size_t j = 0; j < 8; ++j) {
            const size_t oc = blk * 8 + j;
            const int8_t *src = weights + oc * k;
            for (size_t kk = full; kk < k2 * 2; ++kk) {
                dst[(kk >> 1) * 16 + j * 2 + (kk & 1)] =
                    (oc < out_c && kk < k) ? (int16_t)src[kk] : 0;
            }
        }
    }
}

/* acc[i][j]: pixel i, channels 8j..8j+7 of the 16-channel block. */
static inline void gemm_4x16(const int16_t *const p[MR], const int16_t *w0, const int16_t *w1,
                             size_t k2, __m256i acc[MR][2]) {
    __m256i a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,
            a30 = a00, a31 = a00;
    const int16_t *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3];
    for (size_t k = 0; k < k2; ++k) {
        const __m256i wa = load_si256(w0 + 16 * k), wb = load_si256(w1 + 16 * k);
        __m256i b = _mm256_set1_epi32(load_i32(p0 + 2 * k));
        a00 = _mm256_add_epi32(a00, _mm256_madd_epi16(b, wa));
        a01 = _mm256_add_epi32(a01, _mm256_madd_epi16(b, wb));
        b = _mm256_set1_epi32(load_i32(p1 + 2 * k));
        a10 = _mm256_add_epi32(a10, _mm256_madd_epi16(b, wa));
        a11 = _mm256_add_epi32(a11, _mm256_madd_epi16(b, wb));
        b = _mm256_set1_epi32(load_i32(p2 + 2 * k));
        a20 = _mm256_add_epi32(a20, _mm256_madd_epi16(b, wa));
        a21 = _mm256_add_epi32(a21, _mm256_madd_epi16(b, wb));
        b = _mm256_set1_epi32(load_i32(p3 + 2 * k));
        a30 = _mm256_add_epi32(a30, _mm256_madd_epi16(b, wa));
        a31 = _mm256_add_epi32(a31, _mm256_madd_epi16(b, wb));
    }
    acc[0][0] = a00, acc[0][1] = a01, acc[1][0] = a10, acc[1][1] = a11;
    acc[2][0] = a20, acc[2][1] = a21, acc[3][0] = a30, acc[3][1] = a31;
}

static inline void gemm_4x8(const int16_t *const p[MR], const int16_t *w0, size_t k2,
                            __m256i acc[MR][2]) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    const int16_t *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3];
    for (size_t k = 0; k < k2; ++k) {
        const __m256i wa = load_si256(w0 + 16 * k);
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_set1_epi32(load_i32(p0 + 2 * k)), wa));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_set1_epi32(load_i32(p1 + 2 * k)), wa));
        a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(_mm256_set1_epi32(load_i32(p2 + 2 * k)), wa));
        a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(_mm256_set1_epi32(load_i32(p3 + 2 * k)), wa));
    }
    acc[0][0] = a0, acc[1][0] = a1, acc[2][0] = a2, acc[3][0] = a3;
}

void npu_conv2d_s8_avx2(const int8_t *input, const int8_t *weights, const int32_t *bias,
                        int8_t *output, const int32_t *mult, const int32_t *shift,
                        const npu_window *g, int32_t input_offset, int32_t output_offset,
                        int32_t act_min, int32_t act_max, void *scratch) {
    size_t k2, np;
    const size_t k = conv_dims(g, &k2, &np);
    const size_t out_c = (size_t)g->out_c;
    const size_t pixels_per_image = (size_t)g->out_h * (size_t)g->out_w;
    const size_t m_total = (size_t)g->batches * pixels_per_image;
    const size_t image_size = (size_t)g->in_h * (size_t)g->in_w * (size_t)g->in_c;
    const __m256i out_off = _mm256_set1_epi32(output_offset);
    const __m256i lo = _mm256_set1_epi32(act_min), hi = _mm256_set1_epi32(act_max);
    unsigned char *cursor = (unsigned char *)scratch;
    /* every output pixel reads exactly its own input pixel: input rows are patches */
    const int pointwise = g->k_h == 1 && g->k_w == 1 && g->stride_h == 1 && g->stride_w == 1 &&
                          g->pad_h == 0 && g->pad_w == 0 && g->in_h == g->out_h &&
                          g->in_w == g->out_w;
    requant_tables t;
    int16_t *wp, *patches;
    size_t pb = 0; /* batch, row and column of the next patch to build */
    int32_t py = 0, px = 0;

    t.bias = take(&cursor, np * sizeof(int32_t));
    t.mult = take(&cursor, np * sizeof(int32_t));
    t.lsh = take(&cursor, np * sizeof(int32_t));
    t.rsh = take(&cursor, np * sizeof(int32_t));
    wp = take(&cursor, np * k2 * 2 * sizeof(int16_t));
    patches = take(&cursor, TILE * k2 * 2 * sizeof(int16_t));
    fill_tables(&t, bias, mult, shift, out_c, np);

    pack_weights(wp, weights, out_c, np, k, k2);
    (void)pixels_per_image;

    for (size_t m0 = 0; m0 < m_total; m0 += TILE) {
        const size_t tile = m_total - m0 < TILE ? m_total - m0 : TILE;
        if (pointwise && !(k & 1)) {
            widen_run(patches, input + m0 * k, tile * k, input_offset);
        } else {
            for (size_t i = 0; i < tile; ++i) {
                build_patch(patches + i * k2 * 2, input + pb * image_size, g, py, px,
                            input_offset, k);
                if (++px == g->out_w) {
                    px = 0;
                    if (++py == g->out_h) {
                        py = 0;
                        ++pb;
                    }
                }
            }
        }
        for (size_t n0 = 0; n0 < np; n0 += 16) {
            const int16_t *w0 = wp + (n0 / 8) * k2 * 16, *w1 = w0 + k2 * 16;
            for (size_t i0 = 0; i0 < tile; i0 += MR) {
                const int16_t *p[MR];
                __m256i acc[MR][2];
                const size_t rows = tile - i0 < MR ? tile - i0 : MR;
                for (size_t i = 0; i < MR; ++i) {
                    p[i] = patches + (i0 + (i < rows ? i : rows - 1)) * k2 * 2;
                }
                if (n0 + 8 >= out_c) {
                    gemm_4x8(p, w0, k2, acc);
                } else {
                    gemm_4x16(p, w0, w1, k2, acc);
                }
                for (size_t i = 0; i < rows; ++i) {
                    int8_t *out = output + (m0 + i0 + i) * out_c;
                    for (size_t j = 0; j < 2; ++j) {
                        const size_t c = n0 + 8 * j;
                        if (c < out_c) {
                            store_n(out + c, requant8(acc[i][j], &t, c, out_off, lo, hi), out_c - c);
                        }
                    }
                }
            }
        }
    }
}

/* ---- depthwise (depth multiplier 1): 16 channels per vector -------------------------
 * (x + offset) * w is exact in int16 (|.| <= 255 * 128); sums widen to int32. */

size_t npu_depthwise_conv2d_s8_avx2_scratch(const npu_window *g) {
    const size_t cp = ALIGN_UP((size_t)g->out_c, 16);
    /* eight channels: a second weight table (depthwise8 below) */
    const size_t tables = g->out_c == 8 ? 2 : 1;
    return 6 * 32 + 4 * cp * sizeof(int32_t) +
           tables * (size_t)g->k_h * (size_t)g->k_w * cp * sizeof(int16_t);
}

/* Eight channels (micro_speech's depthwise once its channels are repeated) fill half a
 * vector: take two taps per vector instead, their bytes interleaved so that one madd sums
 * both taps' products per channel ((x + offset) * w is exact in int16, two of them in
 * int32). pairs[tap]: the weights of tap and tap + 1 interleaved (0 past the row's end);
 * singles[tap]: tap's weights with zeros between, for a row's odd last tap. */
static void depthwise8(const int8_t *input, const int16_t *pairs, const int16_t *singles,
                       const requant_tables *t, const npu_window *g, int32_t input_offset,
                       __m256i out_off, __m256i lo, __m256i hi, int8_t *out) {
    const __m256i off16 = _mm256_set1_epi16((int16_t)input_offset);
    const __m128i zero = _mm_setzero_si128();
    const size_t row_bytes = (size_t)g->in_w * 8, step = (size_t)g->dilation_w * 8;
    for (int32_t b = 0; b < g->batches; ++b) {
        const int8_t *image = input + (size_t)b * (size_t)g->in_h * row_bytes;
        for (int32_t oy = 0; oy < g->out_h; ++oy) {
            const int32_t y0 = oy * g->stride_h - g->pad_h;
            int32_t ky0 = 0, ky1 = g->k_h;
            while (ky0 < g->k_h && y0 + ky0 * g->dilation_h < 0) {
                ++ky0;
            }
            while (ky1 > ky0 && y0 + (ky1 - 1) * g->dilation_h >= g->in_h) {
                --ky1;
            }
            for (int32_t ox = 0; ox < g->out_w; ++ox) {
                const int32_t x0 = ox * g->stride_w - g->pad_w;
                int32_t kx0 = 0, kx1 = g->k_w;
                while (kx0 < g->k_w && x0 + kx0 * g->dilation_w < 0) {
                    ++kx0;
                }
                while (kx1 > kx0 && x0 + (kx1 - 1) * g->dilation_w >= g->in_w) {
                    --kx1;
                }
                __m256i acc = _mm256_setzero_si256();
                for (int32_t ky = ky0; ky < ky1; ++ky) {
                    const size_t tap0 = (size_t)ky * (size_t)g->k_w;
                    const int8_t *px = image + (size_t)(y0 + ky * g->dilation_h) * row_bytes +
                                       (size_t)(x0 + kx0 * g->dilation_w) * 8;
                    int32_t kx = kx0;
                    for (; kx + 1 < kx1; kx += 2, px += 2 * step) {
                        const __m128i both = _mm_unpacklo_epi8(
                            _mm_loadl_epi64((const __m128i *)px),
                            _mm_loadl_epi64((const __m128i *)(px + step)));
                        const __m256i x = _mm256_add_epi16(_mm256_cvtepi8_epi16(both), off16);
                        acc = _mm256_add_epi32(
                            acc, _mm256_madd_epi16(x, load_si256(pairs + (tap0 + (size_t)kx) * 16)));
                    }
                    if (kx < kx1) {
                        const __m128i one =
                            _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)px), zero);
                        const __m256i x = _mm256_add_epi16(_mm256_cvtepi8_epi16(one), off16);
                        acc = _mm256_add_epi32(
                            acc, _mm256_madd_epi16(x, load_si256(singles + (tap0 + (size_t)kx) * 16)));
                    }
                }
                store_n(out, requant8(acc, t, 0, out_off, lo, hi), 8);
                out += 8;
            }
        }
    }
}

void npu_depthwise_conv2d_s8_avx2(const int8_t *input, const int8_t *weights,
                                  const int32_t *bias, int8_t *output, const int32_t *mult,
                                  const int32_t *shift, const npu_window *g,
                                  int32_t input_offset, int32_t output_offset, int32_t act_min,
                                  int32_t act_max, void *scratch) {
    const size_t c_n = (size_t)g->out_c, cp = ALIGN_UP(c_n, 16), taps = (size_t)g->k_h * (size_t)g->k_w;
    const size_t c16 = c_n & ~(size_t)15;
    const __m256i out_off = _mm256_set1_epi32(output_offset);
    const __m256i lo = _mm256_set1_epi32(act_min), hi = _mm256_set1_epi32(act_max);
    const __m256i off16 = _mm256_set1_epi16((int16_t)input_offset);
    unsigned char *cursor = (unsigned char *)scratch;
    requant_tables t;
    int16_t *w16;
    int8_t *out = output;

    t.bias = take(&cursor, cp * sizeof(int32_t));
    t.mult = take(&cursor, cp * sizeof(int32_t));
    t.lsh = take(&cursor, cp * sizeof(int32_t));
    t.rsh = take(&cursor, cp * sizeof(int32_t));
    w16 = take(&cursor, taps * cp * sizeof(int16_t));
    fill_tables(&t, bias, mult, shift, c_n, cp);
    if (c_n == 8) {
        int16_t *singles = take(&cursor, taps * cp * sizeof(int16_t));
        for (size_t tap = 0; tap < taps; ++tap) {
            const int last = (tap + 1) % (size_t)g->k_w == 0; /* no tap + 1 in this row */
            for (size_t c = 0; c < 8; ++c) {
                w16[tap * 16 + 2 * c] = singles[tap * 16 + 2 * c] = weights[tap * 8 + c];
                w16[tap * 16 + 2 * c + 1] = last ? 0 : weights[(tap + 1) * 8 + c];
                singles[tap * 16 + 2 * c + 1] = 0;
            }
        }
        depthwise8(input, w16, singles, &t, g, input_offset, out_off, lo, hi, output);
        return;
    }
    for (size_t tap = 0; tap < taps; ++tap) {
        for (size_t c = 0; c < cp; ++c) {
            w16[tap * cp + c] = c < c_n ? weights[tap * c_n + c] : 0;
        }
    }

    for (int32_t b = 0; b < g->batches; ++b) {
        const int8_t *image = input + (size_t)b * (size_t)g->in_h * (size_t)g->in_w * c_n;
        for (int32_t oy = 0; oy < g->out_h; ++oy) {
            const int32_t y0 = oy * g->stride_h - g->pad_h;
            int32_t ky0 = 0, ky1 = g->k_h;
            while (ky0 < g->k_h && y0 + ky0 * g->dilation_h < 0) {
                ++ky0;
            }
            while (ky1 > ky0 && y0 + (ky1 - 1) * g->dilation_h >= g->in_h) {
                --ky1;
            }
            for (int32_t ox = 0; ox < g->out_w; ++ox) {
                const int32_t x0 = ox * g->stride_w - g->pad_w;
                int32_t kx0 = 0, kx1 = g->k_w;
                while (kx0 < g->k_w && x0 + kx0 * g->dilation_w < 0) {
                    ++kx0;
                }
                while (kx1 > kx0 && x0 + (kx1 - 1) * g->dilation_w >= g->in_w) {
                    --kx1;
                }
                for (size_t c = 0; c < cp; c += 16) {
                    __m256i acc_lo = _mm256_setzero_si256(), acc_hi = acc_lo;
                    const size_t n = c_n - c < 16 ? c_n - c : 16;
                    for (int32_t ky = ky0; ky < ky1; ++ky) {
                        const int8_t *row = image + (size_t)(y0 + ky * g->dilation_h) *
                                                        (size_t)g->in_w * c_n + c;
                        const int16_t *wrow = w16 + (size_t)ky * (size_t)g->k_w * cp + c;
                        for (int32_t kx = kx0; kx < kx1; ++kx) {
                            const int8_t *px = row + (size_t)(x0 + kx * g->dilation_w) * c_n;
                            __m128i raw;
                            __m256i prod;
                            if (c < c16) {
                                raw = _mm_loadu_si128((const __m128i *)px);
                            } else if (n == 8) {
                                raw = _mm_loadl_epi64((const __m128i *)px);
                            } else {
                                int8_t tmp[16] = {0};
                                memcpy(tmp, px, n);
                                raw = _mm_loadu_si128((const __m128i *)tmp);
                            }
                            prod = _mm256_mullo_epi16(
                                _mm256_add_epi16(_mm256_cvtepi8_epi16(raw), off16),
                                load_si256(wrow + (size_t)kx * cp));
                            acc_lo = _mm256_add_epi32(
                                acc_lo, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(prod)));
                            acc_hi = _mm256_add_epi32(
                                acc_hi, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(prod, 1)));
                        }
                    }
                    store_n(out + c, requant8(acc_lo, &t, c, out_off, lo, hi), n);
                    if (n > 8) {
                        store_n(out + c + 8, requant8(acc_hi, &t, c + 8, out_off, lo, hi), n - 8);
                    }
                }
                out += c_n;
            }
        }
    }
}

/* ---- fully connected: (x + offset) widened once, rows dotted 4 at a time ---------- */

size_t npu_fully_connected_avx2_scratch(int32_t batches, int32_t in_depth) {
    return 32 + (size_t)batches * ALIGN_UP((size_t)in_depth, 16) * sizeof(int16_t);
}

void npu_fully_connected_avx2(const int8_t *input, const int8_t *weights, const int32_t *bias,
                              int8_t *output, const int32_t *mult, const int32_t *shift,
                              int per_channel, int32_t batches, int32_t in_depth,
                              int32_t out_depth, int32_t input_offset, int32_t output_offset,
                              int32_t act_min, int32_t act_max, void *scratch) {
    const size_t k = (size_t)in_depth, kp = ALIGN_UP(k, 16), k16 = k & ~(size_t)15;
    unsigned char *cursor = (unsigned char *)scratch;
    int16_t *xs = take(&cursor, (size_t)batches * kp * sizeof(int16_t));
    for (int32_t b = 0; b < batches; ++b) {
        widen_run(xs + (size_t)b * kp, input + (size_t)b * k, k, input_offset);
    }
    for (int32_t b = 0; b < batches; ++b) {
        const int16_t *x = xs + (size_t)b * kp;
        int8_t *out = output + (size_t)b * (size_t)out_depth;
        int32_t o = 0;
        for (; o < out_depth; o += 4) {
            const int rows = out_depth - o < 4 ? out_depth - o : 4;
            const int8_t *w[4];
            __m256i acc[4];
            int32_t sums[4];
            for (int r = 0; r < 4; ++r) {
                w[r] = weights + (size_t)(o + (r < rows ? r : rows - 1)) * k;
                acc[r] = _mm256_setzero_si256();
            }
            for (size_t i = 0; i < k16; i += 16) {
                const __m256i xv = load_si256(x + i);
                for (int r = 0; r < 4; ++r) {
                    const __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w[r] + i)));
                    acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(xv, wv));
                }
            }
            for (int r = 0; r < rows; ++r) {
                uint32_t s = (uint32_t)hsum8(acc[r]);
                for (size_t i = k16; i < k; ++i) {
                    s += (uint32_t)((int32_t)x[i] * (int32_t)w[r][i]);
                }
                if (bias != NULL) {
                    s += (uint32_t)bias[o + r];
                }
                sums[r] = (int32_t)s;
            }
            for (int r = 0; r < rows; ++r) {
                const int32_t q = per_channel ? o + r : 0;
                int32_t a = npu_multiply_by_quantized_multiplier(sums[r], mult[q], shift[q]);
                a = npu_wrap_add(a, output_offset);
                out[o + r] = (int8_t)(a < act_min ? act_min : (a > act_max ? act_max : a));
            }
        }
    }
}

/* ---- elementwise ADD over contiguous runs ------------------------------------------ */

/* MultiplyByQuantizedMultiplier with one multiplier for all lanes. */
static inline __m256i mbqm8(__m256i x, __m256i mult, __m128i lsh, __m256i rsh) {
    return rdbp8(srdhm8(_mm256_sll_epi32(x, lsh), mult), rsh);
}

/* out[i] = add_one(a[i], b[i]) for n elements, both inputs contiguous; returns how
 * many were done (whole vectors), the caller finishes the rest. */
size_t npu_add_s8_avx2_run(const int8_t *a, const int8_t *b, int8_t *out, size_t n,
                           const npu_arith *p) {
    const __m256i off1 = _mm256_set1_epi32(p->input1_offset);
    const __m256i off2 = _mm256_set1_epi32(p->input2_offset);
    const __m128i ls = _mm_cvtsi32_si128(p->left_shift);
    const __m256i m1 = _mm256_set1_epi32(p->input1_multiplier);
    const __m256i m2 = _mm256_set1_epi32(p->input2_multiplier);
    const __m256i mo = _mm256_set1_epi32(p->output_multiplier);
    const __m128i l1 = _mm_cvtsi32_si128(p->input1_shift > 0 ? p->input1_shift : 0);
    const __m128i l2 = _mm_cvtsi32_si128(p->input2_shift > 0 ? p->input2_shift : 0);
    const __m128i lo_ = _mm_cvtsi32_si128(p->output_shift > 0 ? p->output_shift : 0);
    const __m256i r1 = _mm256_set1_epi32(p->input1_shift > 0 ? 0 : -p->input1_shift);
    const __m256i r2 = _mm256_set1_epi32(p->input2_shift > 0 ? 0 : -p->input2_shift);
    const __m256i ro = _mm256_set1_epi32(p->output_shift > 0 ? 0 : -p->output_shift);
    const __m256i oo = _mm256_set1_epi32(p->output_offset);
    const __m256i lo = _mm256_set1_epi32(p->act_min), hi = _mm256_set1_epi32(p->act_max);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i x1 = _mm256_sll_epi32(
            _mm256_add_epi32(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(a + i))), off1), ls);
        const __m256i x2 = _mm256_sll_epi32(
            _mm256_add_epi32(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b + i))), off2), ls);
        __m256i r = mbqm8(_mm256_add_epi32(mbqm8(x1, m1, l1, r1), mbqm8(x2, m2, l2, r2)), mo, lo_, ro);
        r = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(r, oo), lo), hi);
        {
            const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
            _mm_storel_epi64((__m128i *)(out + i), _mm_packs_epi16(w, w));
        }
    }
    return i;
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif /* NPU_HAVE_X86_DISPATCH */
