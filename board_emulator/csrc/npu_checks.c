/* npu_checks.c - the kernels' argument checks, shared by both bindings (npu_checks.h).
 * Messages are built by hand: a bare-metal MicroPython image links no C library. */
#include "npu_checks.h"

const char *const npu_elem_names[] = {"int8", "int32", "float32", "int16", "int64"};
const int npu_elem_sizes[] = {1, 4, 4, 2, 8};

#define WINDOW_LIMIT (1LL << 30)

/* ---- message building ---------------------------------------------------------- */

typedef struct {
    npu_err *e;
    int len;
} msg;

static msg msg_start(npu_err *e) {
    msg m = {e, 0};
    e->msg[0] = '\0';
    return m;
}

static void put_s(msg *m, const char *s) {
    while (*s != '\0' && m->len < (int)sizeof m->e->msg - 1) {
        m->e->msg[m->len++] = *s++;
    }
    m->e->msg[m->len] = '\0';
}

static void put_i(msg *m, long long v) {
    char digits[24];
    int n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        digits[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        digits[n++] = '-';
    }
    while (n > 0) {
        char c[2] = {digits[--n], '\0'};
        put_s(m, c);
    }
}

static int fail(npu_err *e, const char *text) {
    msg m = msg_start(e);
    put_s(&m, text);
    return -1;
}

/* ---- scalar checks --------------------------------------------------------------- */

int npu_check_positive(npu_err *e, const char *name, long long value) {
    if (value <= 0) {
        msg m = msg_start(e);
        put_s(&m, name);
        put_s(&m, " must be positive, got ");
        put_i(&m, value);
        return -1;
    }
    return 0;
}

int npu_check_range(npu_err *e, const char *name, long long value, long long lo, long long hi) {
    if (value < lo || value > hi) {
        msg m = msg_start(e);
        put_s(&m, name);
        put_s(&m, " must be in [");
        put_i(&m, lo);
        put_s(&m, ", ");
        put_i(&m, hi);
        put_s(&m, "], got ");
        put_i(&m, value);
        return -1;
    }
    return 0;
}

static int check_act(npu_err *e, int32_t act_min, int32_t act_max) {
    return npu_check_range(e, "act_min", act_min, -128, 127) < 0 ||
           npu_check_range(e, "act_max", act_max, act_min, 127) < 0 ? -1 : 0;
}

int npu_check_shifts(npu_err *e, const int32_t *shift, int32_t n) {
    for (int32_t o = 0; o < n; ++o) {
        if (shift[o] < -31 || shift[o] > 31) {
            msg m = msg_start(e);
            put_s(&m, "shift[");
            put_i(&m, o);
            put_s(&m, "] must be in [-31, 31], got ");
            put_i(&m, shift[o]);
            return -1;
        }
    }
    return 0;
}

int npu_check_requant_s16(npu_err *e, const int32_t *mult, const int32_t *shift,
                          const int64_t *bias, int32_t n) {
    for (int32_t o = 0; o < n; ++o) {
        if (shift[o] < -31 || shift[o] > 7 || mult[o] < 0) {
            msg m = msg_start(e);
            put_s(&m, "shift[");
            put_i(&m, o);
            put_s(&m, "] must be in [-31, 7] and mult[");
            put_i(&m, o);
            put_s(&m, "] >= 0, got ");
            put_i(&m, shift[o]);
            put_s(&m, ", ");
            put_i(&m, mult[o]);
            return -1;
        }
        if (bias != NULL && (bias[o] > NPU_MAX_BIAS_S64 || bias[o] < -NPU_MAX_BIAS_S64)) {
            msg m = msg_start(e);
            put_s(&m, "bias[");
            put_i(&m, o);
            put_s(&m, "] must be within +-2^46");
            return -1;
        }
    }
    return 0;
}

int npu_check_buffer(npu_err *e, const npu_need *need, long long len, uintptr_t address) {
    const long long size = npu_elem_sizes[need->kind];
    msg m = msg_start(e);
    if (len < need->count * size) {
        put_s(&m, need->name);
        put_s(&m, ": buffer too small: need ");
        put_i(&m, need->count * size);
        put_s(&m, " bytes (");
        put_i(&m, need->count);
        put_s(&m, " ");
        put_s(&m, npu_elem_names[need->kind]);
        put_s(&m, " elements), got ");
        put_i(&m, len);
        put_s(&m, " bytes");
        return -1;
    }
    if (size > 1 && address % (uintptr_t)size != 0) {
        put_s(&m, need->name);
        put_s(&m, ": ");
        put_s(&m, npu_elem_names[need->kind]);
        put_s(&m, " buffer is not ");
        put_i(&m, size);
        put_s(&m, "-byte aligned; pass an aligned copy (e.g. bytes(");
        put_s(&m, need->name);
        put_s(&m, ") or numpy.array(..., dtype=numpy.");
        put_s(&m, npu_elem_names[need->kind]);
        put_s(&m, "))");
        return -1;
    }
    return 0;
}

static void need(npu_need *n, const char *name, npu_elem kind, int writable, long long count) {
    n->name = name;
    n->kind = kind;
    n->writable = writable;
    n->optional = 0;
    n->count = count;
}

static long long volume(long long a, long long b, long long c, long long d) {
    return a * b * c * d;
}

/* ---- per kernel ---------------------------------------------------------------------- */

int npu_args_fully_connected(npu_err *e, npu_need *needs, int32_t batches, int32_t in_depth,
                             int32_t out_depth, int32_t input_offset, int32_t act_min,
                             int32_t act_max) {
    if (npu_check_positive(e, "batches", batches) < 0 ||
        npu_check_positive(e, "in_depth", in_depth) < 0 ||
        npu_check_positive(e, "out_depth", out_depth) < 0 ||
        npu_check_range(e, "in_depth", in_depth, 1, NPU_MAX_IN_DEPTH) < 0 ||
        npu_check_range(e, "input_offset", input_offset, NPU_INPUT_OFFSET_MIN,
                        NPU_INPUT_OFFSET_MAX) < 0 ||
        check_act(e, act_min, act_max) < 0) {
        return -1;
    }
    need(&needs[0], "inp", NPU_I8, 0, (long long)batches * in_depth);
    need(&needs[1], "weights", NPU_I8, 0, (long long)out_depth * in_depth);
    need(&needs[2], "bias", NPU_I32, 0, out_depth);
    needs[2].optional = 1;
    need(&needs[3], "out", NPU_I8, 1, (long long)batches * out_depth);
    need(&needs[4], "mult", NPU_I32, 0, 1);
    need(&needs[5], "shift", NPU_I32, 0, 1);
    return 6;
}

int npu_fc_pairs(npu_err *e, const npu_need *needs, long long mult_len, long long shift_len,
                 int32_t out_depth) {
    if (mult_len == 4 && shift_len == 4) {
        return 1;
    }
    npu_need rows[2] = {needs[4], needs[5]};
    rows[0].count = rows[1].count = out_depth;
    if (npu_check_buffer(e, &rows[0], mult_len, 0) < 0 ||
        npu_check_buffer(e, &rows[1], shift_len, 0) < 0) {
        return -1;
    }
    return out_depth;
}

int npu_args_fully_connected_s16(npu_err *e, npu_need *needs, int32_t batches,
                                 int32_t in_depth, int32_t out_depth, int32_t act_min,
                                 int32_t act_max) {
    /* |x * w| <= 2^22: in_depth < 2^24 and |bias| <= 2^46 keep the int64 sum inside
     * TFLM's 2^47 bound (and its product with a 16-bit multiplier inside int64). */
    if (npu_check_positive(e, "batches", batches) < 0 ||
        npu_check_positive(e, "out_depth", out_depth) < 0 ||
        npu_check_range(e, "in_depth", in_depth, 1, (1 << 24) - 1) < 0 ||
        npu_check_range(e, "act_min", act_min, -32768, 32767) < 0 ||
        npu_check_range(e, "act_max", act_max, act_min, 32767) < 0) {
        return -1;
    }
    need(&needs[0], "inp", NPU_I16, 0, (long long)batches * in_depth);
    need(&needs[1], "weights", NPU_I8, 0, (long long)out_depth * in_depth);
    need(&needs[2], "bias", NPU_I64, 0, out_depth);
    needs[2].optional = 1;
    need(&needs[3], "out", NPU_I16, 1, (long long)batches * out_depth);
    need(&needs[4], "mult", NPU_I32, 0, out_depth);
    need(&needs[5], "shift", NPU_I32, 0, out_depth);
    return 6;
}

int npu_args_softmax(npu_err *e, npu_need *needs, int32_t rows, int32_t depth,
                     int32_t input_left_shift, int32_t diff_min) {
    if (npu_check_positive(e, "rows", rows) < 0 || npu_check_positive(e, "depth", depth) < 0 ||
        npu_check_range(e, "input_left_shift", input_left_shift, 0, 31) < 0 ||
        npu_check_range(e, "diff_min", diff_min, INT32_MIN, 0) < 0) {
        return -1;
    }
    need(&needs[0], "inp", NPU_I8, 0, (long long)rows * depth);
    need(&needs[1], "out", NPU_I8, 1, (long long)rows * depth);
    return 2;
}

int npu_args_quantize(npu_err *e, npu_need *needs, int to_int8, int32_t n, float scale,
                      int32_t zero_point) {
    if (npu_check_positive(e, "n", n) < 0) {
        return -1;
    }
    /* NaN fails every comparison; infinity is the one value equal to twice itself */
    if (!(scale > 0.0f) || scale * 2.0f == scale) {
        return fail(e, "scale must be a finite float32 > 0");
    }
    if (npu_check_range(e, "zero_point", zero_point, -128, 127) < 0) {
        return -1;
    }
    need(&needs[0], "inp", to_int8 ? NPU_F32 : NPU_I8, 0, n);
    need(&needs[1], "out", to_int8 ? NPU_I8 : NPU_F32, 1, n);
    return 2;
}

int npu_args_quantize_s16(npu_err *e, npu_need *needs, int to_int16, int32_t n, float scale,
                          int32_t zero_point) {
    if (npu_check_positive(e, "n", n) < 0) {
        return -1;
    }
    if (!(scale > 0.0f) || scale * 2.0f == scale) {
        return fail(e, "scale must be a finite float32 > 0");
    }
    if (npu_check_range(e, "zero_point", zero_point, -32768, 32767) < 0) {
        return -1;
    }
    need(&needs[0], "inp", to_int16 ? NPU_F32 : NPU_I16, 0, n);
    need(&needs[1], "out", to_int16 ? NPU_I16 : NPU_F32, 1, n);
    return 2;
}

/* One spatial axis: sizes positive, pad >= 0, every coordinate far inside int32. */
static int check_axis(npu_err *e, const char *axis, int32_t in, int32_t out, int32_t k,
                      int32_t stride, int32_t dilation, int32_t pad) {
    if (in < 1 || out < 1 || k < 1 || stride < 1 || dilation < 1 || pad < 0 ||
        pad >= WINDOW_LIMIT ||
        (long long)(out - 1) * stride + (long long)(k - 1) * dilation >= WINDOW_LIMIT) {
        msg m = msg_start(e);
        put_s(&m, "bad ");
        put_s(&m, axis);
        put_s(&m, " geometry: in ");
        put_i(&m, in);
        put_s(&m, ", out ");
        put_i(&m, out);
        put_s(&m, ", kernel ");
        put_i(&m, k);
        put_s(&m, ", stride ");
        put_i(&m, stride);
        put_s(&m, ", dilation ");
        put_i(&m, dilation);
        put_s(&m, ", pad ");
        put_i(&m, pad);
        put_s(&m, " (sizes, strides and dilations must be >= 1, pad >= 0, the window span "
                  "below 2^30)");
        return -1;
    }
    return 0;
}

int npu_check_window(npu_err *e, const npu_window *g) {
    return npu_check_positive(e, "batches", g->batches) < 0 ||
           npu_check_positive(e, "in_c", g->in_c) < 0 ||
           npu_check_positive(e, "out_c", g->out_c) < 0 ||
           check_axis(e, "height", g->in_h, g->out_h, g->k_h, g->stride_h, g->dilation_h,
                      g->pad_h) < 0 ||
           check_axis(e, "width", g->in_w, g->out_w, g->k_w, g->stride_w, g->dilation_w,
                      g->pad_w) < 0 ? -1 : 0;
}

int npu_args_conv(npu_err *e, npu_need *needs, npu_window *g, int depthwise, int32_t channels,
                  int32_t input_offset, int32_t act_min, int32_t act_max) {
    long long macs, w_count;
    if (npu_check_positive(e, depthwise ? "depth_multiplier" : "out_c", channels) < 0 ||
        npu_check_positive(e, "in_c", g->in_c) < 0) {
        return -1;
    }
    if (depthwise) {
        if ((long long)g->in_c * channels > INT32_MAX / 2) {
            return fail(e, "in_c * depth_multiplier is too large");
        }
        g->depth_multiplier = channels;
        g->out_c = g->in_c * channels;
    } else {
        g->depth_multiplier = 1;
        g->out_c = channels;
    }
    if (npu_check_window(e, g) < 0 ||
        npu_check_range(e, "input_offset", input_offset, NPU_INPUT_OFFSET_MIN,
                        NPU_INPUT_OFFSET_MAX) < 0 ||
        check_act(e, act_min, act_max) < 0) {
        return -1;
    }
    macs = depthwise ? (long long)g->k_h * g->k_w : volume(g->k_h, g->k_w, g->in_c, 1);
    if (macs > MAX_WINDOW_MACS) {
        msg m = msg_start(e);
        put_s(&m, depthwise ? "k_h * k_w" : "k_h * k_w * in_c");
        put_s(&m, " must be at most ");
        put_i(&m, MAX_WINDOW_MACS);
        put_s(&m, " (int32 accumulators)");
        return -1;
    }
    w_count = depthwise ? volume(g->k_h, g->k_w, g->out_c, 1)
                        : volume(g->out_c, g->k_h, g->k_w, g->in_c);
    need(&needs[0], "inp", NPU_I8, 0, volume(g->batches, g->in_h, g->in_w, g->in_c));
    need(&needs[1], "weights", NPU_I8, 0, w_count);
    need(&needs[2], "bias", NPU_I32, 0, g->out_c);
    needs[2].optional = 1;
    need(&needs[3], "out", NPU_I8, 1, volume(g->batches, g->out_h, g->out_w, g->out_c));
    need(&needs[4], "mult", NPU_I32, 0, g->out_c);
    need(&needs[5], "shift", NPU_I32, 0, g->out_c);
    return 6;
}

int npu_args_conv_s16(npu_err *e, npu_need *needs, npu_window *g, int depthwise,
                      int32_t channels, int32_t act_min, int32_t act_max) {
    /* the int8 checks with offset 0 and the int8 clamp opened to int16 below */
    const int n = npu_args_conv(e, needs, g, depthwise, channels, 0, -128, 127);
    if (n < 0) {
        return -1;
    }
    if (npu_check_range(e, "act_min", act_min, -32768, 32767) < 0 ||
        npu_check_range(e, "act_max", act_max, act_min, 32767) < 0) {
        return -1;
    }
    needs[0].kind = NPU_I16;
    needs[2].kind = NPU_I64;
    needs[3].kind = NPU_I16;
    return n;
}

int npu_args_pool(npu_err *e, npu_need *needs, npu_window *g, int32_t act_min, int32_t act_max,
                  int wide) {
    const npu_elem kind = wide ? NPU_I16 : NPU_I8;
    const long long hi = wide ? 32767 : 127;
    g->out_c = g->in_c;
    g->dilation_h = g->dilation_w = g->depth_multiplier = 1;
    if (npu_check_window(e, g) < 0 || npu_check_range(e, "act_min", act_min, -hi - 1, hi) < 0 ||
        npu_check_range(e, "act_max", act_max, act_min, hi) < 0) {
        return -1;
    }
    /* the 16x8 average sums k_h * k_w int16 values in int32 */
    if (wide && npu_check_range(e, "k_h * k_w", (long long)g->k_h * g->k_w, 1, MAX_WINDOW_MACS) < 0) {
        return -1;
    }
    if (g->pad_h >= g->k_h || g->pad_w >= g->k_w ||
        (long long)(g->out_h - 1) * g->stride_h - g->pad_h >= g->in_h ||
        (long long)(g->out_w - 1) * g->stride_w - g->pad_w >= g->in_w) {
        return fail(e, "a pooling window lies wholly in the padding; every window must "
                       "overlap the input");
    }
    need(&needs[0], "inp", kind, 0, volume(g->batches, g->in_h, g->in_w, g->in_c));
    need(&needs[1], "out", kind, 1, volume(g->batches, g->out_h, g->out_w, g->out_c));
    return 2;
}

/* Elements an input must hold to be read at every index (strides >= 0). */
static long long strided_extent(const int32_t *dims, const int32_t *strides) {
    long long extent = 1;
    for (int k = 0; k < 4; ++k) {
        extent += (long long)(dims[k] - 1) * strides[k];
    }
    return extent;
}

int npu_args_arith(npu_err *e, npu_need *needs, const npu_arith *p, int is_add) {
    for (int k = 0; k < 4; ++k) {
        if (npu_check_range(e, "dims", p->dims[k], 1, INT32_MAX) < 0 ||
            npu_check_range(e, "in1 strides", p->strides1[k], 0, INT32_MAX) < 0 ||
            npu_check_range(e, "in2 strides", p->strides2[k], 0, INT32_MAX) < 0) {
            return -1;
        }
    }
    if (npu_check_range(e, "input1_offset", p->input1_offset, -128, 128) < 0 ||
        npu_check_range(e, "input2_offset", p->input2_offset, -128, 128) < 0 ||
        npu_check_range(e, "output_shift", p->output_shift, -31, 31) < 0 ||
        (is_add && (npu_check_range(e, "left_shift", p->left_shift, 0, 22) < 0 ||
                    npu_check_range(e, "input1_shift", p->input1_shift, -31, 31) < 0 ||
                    npu_check_range(e, "input2_shift", p->input2_shift, -31, 31) < 0)) ||
        check_act(e, p->act_min, p->act_max) < 0) {
        return -1;
    }
    need(&needs[0], "in1", NPU_I8, 0, strided_extent(p->dims, p->strides1));
    need(&needs[1], "in2", NPU_I8, 0, strided_extent(p->dims, p->strides2));
    need(&needs[2], "out", NPU_I8, 1, volume(p->dims[0], p->dims[1], p->dims[2], p->dims[3]));
    return 3;
}

int npu_args_arith_s16(npu_err *e, npu_need *needs, const npu_arith *p, int is_add) {
    for (int k = 0; k < 4; ++k) {
        if (npu_check_range(e, "dims", p->dims[k], 1, INT32_MAX) < 0 ||
            npu_check_range(e, "in1 strides", p->strides1[k], 0, INT32_MAX) < 0 ||
            npu_check_range(e, "in2 strides", p->strides2[k], 0, INT32_MAX) < 0) {
            return -1;
        }
    }
    /* zero points 0: no offsets; |x| << 15 at most keeps an int16 inside int32 */
    if (npu_check_range(e, "input1_offset", p->input1_offset, 0, 0) < 0 ||
        npu_check_range(e, "input2_offset", p->input2_offset, 0, 0) < 0 ||
        npu_check_range(e, "output_offset", p->output_offset, 0, 0) < 0 ||
        npu_check_range(e, "output_shift", p->output_shift, -31, 31) < 0 ||
        (is_add && (npu_check_range(e, "left_shift", p->left_shift, 0, 15) < 0 ||
                    npu_check_range(e, "input1_shift", p->input1_shift, -31, 31) < 0 ||
                    npu_check_range(e, "input2_shift", p->input2_shift, -31, 31) < 0)) ||
        npu_check_range(e, "act_min", p->act_min, -32768, 32767) < 0 ||
        npu_check_range(e, "act_max", p->act_max, p->act_min, 32767) < 0) {
        return -1;
    }
    need(&needs[0], "in1", NPU_I16, 0, strided_extent(p->dims, p->strides1));
    need(&needs[1], "in2", NPU_I16, 0, strided_extent(p->dims, p->strides2));
    need(&needs[2], "out", NPU_I16, 1, volume(p->dims[0], p->dims[1], p->dims[2], p->dims[3]));
    return 3;
}

int npu_args_rescale_s16(npu_err *e, npu_need *needs, int32_t n, int32_t pos_shift,
                         int32_t neg_shift, int32_t act_min, int32_t act_max) {
    if (npu_check_positive(e, "n", n) < 0 ||
        npu_check_range(e, "pos_shift", pos_shift, -31, 31) < 0 ||
        npu_check_range(e, "neg_shift", neg_shift, -31, 31) < 0 ||
        npu_check_range(e, "act_min", act_min, -32768, 32767) < 0 ||
        npu_check_range(e, "act_max", act_max, act_min, 32767) < 0) {
        return -1;
    }
    need(&needs[0], "inp", NPU_I16, 0, n);
    need(&needs[1], "out", NPU_I16, 1, n);
    return 2;
}

int npu_args_lut_s8_s16(npu_err *e, npu_need *needs, int32_t n) {
    if (npu_check_positive(e, "n", n) < 0) {
        return -1;
    }
    need(&needs[0], "inp", NPU_I8, 0, n);
    need(&needs[1], "table", NPU_I16, 0, 256);
    need(&needs[2], "out", NPU_I16, 1, n);
    return 3;
}

int npu_args_requantize_s16_s8(npu_err *e, npu_need *needs, int32_t n, int32_t shift,
                               int32_t output_offset) {
    if (npu_check_positive(e, "n", n) < 0 || npu_check_range(e, "shift", shift, -31, 31) < 0 ||
        npu_check_range(e, "output_offset", output_offset, -128, 127) < 0) {
        return -1;
    }
    need(&needs[0], "inp", NPU_I16, 0, n);
    need(&needs[1], "out", NPU_I8, 1, n);
    return 2;
}

int npu_args_softmax_s16(npu_err *e, npu_need *needs, int32_t rows, int32_t depth,
                         int32_t shift) {
    if (npu_check_positive(e, "rows", rows) < 0 ||
        /* depth exps of at most 32767 summed in int32 */
        npu_check_range(e, "depth", depth, 1, 65535) < 0 ||
        npu_check_range(e, "input_shift", shift, -31, 31) < 0) {
        return -1;
    }
    need(&needs[0], "inp", NPU_I16, 0, (long long)rows * depth);
    need(&needs[1], "out", NPU_I16, 1, (long long)rows * depth);
    need(&needs[2], "exp_lut", NPU_I16, 0, 513);
    need(&needs[3], "recip_lut", NPU_I16, 0, 513);
    return 4;
}

int npu_args_sigmoid_s16(npu_err *e, npu_need *needs, int32_t n, int32_t mult,
                         int32_t left_shift) {
    if (npu_check_positive(e, "n", n) < 0 ||
        npu_check_range(e, "input_multiplier", mult, 1, 32767) < 0 ||
        npu_check_range(e, "input_left_shift", left_shift, 0, 30) < 0) {
        return -1;
    }
    need(&needs[0], "inp", NPU_I16, 0, n);
    need(&needs[1], "table", NPU_I16, 0, 256);
    need(&needs[2], "out", NPU_I16, 1, n);
    return 3;
}

int npu_args_lut(npu_err *e, npu_need *needs, int32_t n) {
    if (npu_check_positive(e, "n", n) < 0) {
        return -1;
    }
    need(&needs[0], "inp", NPU_I8, 0, n);
    need(&needs[1], "table", NPU_I8, 0, 256);
    need(&needs[2], "out", NPU_I8, 1, n);
    return 3;
}

int npu_args_copy(npu_err *e, npu_need *needs, const npu_copy *p) {
    for (int k = 0; k < 4; ++k) {
        const int32_t d = p->dims[k], a = p->in_strides[k], b = p->out_strides[k];
        if (npu_check_range(e, "dims", d, 1, INT32_MAX) < 0 ||
            npu_check_range(e, "in strides", a, 0, INT32_MAX) < 0 ||
            npu_check_range(e, "out strides", b, 0, INT32_MAX) < 0 ||
            /* each span below 2^31 keeps the extents below exact in long long */
            npu_check_range(e, "in span", (long long)(d - 1) * a, 0, INT32_MAX) < 0 ||
            npu_check_range(e, "out span", (long long)(d - 1) * b, 0, INT32_MAX) < 0) {
            return -1;
        }
    }
    if (npu_check_range(e, "out_offset", p->out_offset, 0, INT32_MAX) < 0 ||
        npu_check_range(e, "fill", p->fill, 0, 1) < 0 ||
        npu_check_range(e, "fill_value", p->fill_value, -128, 127) < 0) {
        return -1;
    }
    need(&needs[0], "inp", NPU_I8, 0, strided_extent(p->dims, p->in_strides));
    need(&needs[1], "out", NPU_I8, 1,
         (long long)p->out_offset + strided_extent(p->dims, p->out_strides));
    return 2;
}

int npu_args_mean_s16(npu_err *e, npu_need *needs, int32_t batches, int32_t in_h, int32_t in_w,
                      int32_t channels, int32_t shift) {
    if (npu_check_positive(e, "batches", batches) < 0 ||
        npu_check_positive(e, "in_h", in_h) < 0 || npu_check_positive(e, "in_w", in_w) < 0 ||
        npu_check_positive(e, "channels", channels) < 0 ||
        /* int16 values summed in int32 */
        npu_check_range(e, "in_h * in_w", (long long)in_h * in_w, 1, 65535) < 0 ||
        npu_check_range(e, "shift", shift, -31, 31) < 0) {
        return -1;
    }
    need(&needs[0], "inp", NPU_I16, 0, volume(batches, in_h, in_w, channels));
    need(&needs[1], "out", NPU_I16, 1, (long long)batches * channels);
    return 2;
}

int npu_args_mean(npu_err *e, npu_need *needs, int32_t batches, int32_t in_h, int32_t in_w,
                  int32_t channels, int32_t input_offset, int32_t shift, int32_t output_offset) {
    if (npu_check_positive(e, "batches", batches) < 0 ||
        npu_check_positive(e, "in_h", in_h) < 0 || npu_check_positive(e, "in_w", in_w) < 0 ||
        npu_check_positive(e, "channels", channels) < 0 ||
        npu_check_range(e, "in_h * in_w", (long long)in_h * in_w, 1, NPU_MAX_MEAN_COUNT) < 0 ||
        npu_check_range(e, "input_offset", input_offset, NPU_INPUT_OFFSET_MIN,
                        NPU_INPUT_OFFSET_MAX) < 0 ||
        npu_check_range(e, "shift", shift, -31, 31) < 0 ||
        npu_check_range(e, "output_offset", output_offset, -128, 127) < 0) {
        return -1;
    }
    need(&needs[0], "inp", NPU_I8, 0, volume(batches, in_h, in_w, channels));
    need(&needs[1], "out", NPU_I8, 1, (long long)batches * channels);
    return 2;
}
