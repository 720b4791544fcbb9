/* npu_module.c - the board's NPU driver: a thin MicroPython binding (module `npu`) for the
 * C kernel core board_emulator/csrc/npu_kernels.c, the core the emulator's CPython binding
 * (_kernels.c) wraps too. Same functions, same arguments, so firmware/npufw/interp.py calls
 * either set or the viper one (npufw/kernels.py) without knowing which.
 *
 * Every call checks its scalars and buffers once, with npu_checks.c (shared with the CPython
 * binding), then trusts: the core validates nothing. Buffers are anything with the buffer
 * protocol, read as raw little-endian bytes (the firmware's memoryviews of the arena and of
 * the blob in flash); outputs must be writable.
 *
 * Build: USER_C_MODULES=path/to/firmware/native (micropython.mk, micropython.cmake), with
 * CMSIS_NN_DIR set to use CMSIS-NN's kernels on Arm (npu_cmsis.c; docs/boards.md).
 */
#include "py/obj.h"
#include "py/objstr.h"
#include "py/runtime.h"

#include "npu_checks.h"
#include "npu_cmsis.h"
#include "npu_kernels.h"

#define MAX_BUFFERS 6

static void raise_err(const npu_err *e) {
    mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s"), e->msg);
}

/* The buffers of one call, in argument order from args[0]: checked against needs[]; their
 * lengths in bytes into lens[] where lens is not NULL. */
static void get_buffers_lens(const mp_obj_t *args, const npu_need *needs, int count, void **bufs,
                             long long *lens) {
    npu_err e;
    for (int i = 0; i < count; ++i) {
        mp_buffer_info_t b;
        if (needs[i].optional && args[i] == mp_const_none) {
            bufs[i] = NULL;
            if (lens != NULL) {
                lens[i] = 0;
            }
            continue;
        }
        if (!mp_get_buffer(args[i], &b, needs[i].writable ? MP_BUFFER_WRITE : MP_BUFFER_READ)) {
            mp_raise_msg_varg(&mp_type_TypeError,
                              MP_ERROR_TEXT("%s: expected a %sbuffer of %s, got %s"),
                              needs[i].name, needs[i].writable ? "writable " : "",
                              npu_elem_names[needs[i].kind], mp_obj_get_type_str(args[i]));
        }
        if (npu_check_buffer(&e, &needs[i], (long long)b.len, (uintptr_t)b.buf) < 0) {
            raise_err(&e);
        }
        bufs[i] = b.buf;
        if (lens != NULL) {
            lens[i] = (long long)b.len;
        }
    }
}

static void get_buffers(const mp_obj_t *args, const npu_need *needs, int count, void **bufs) {
    get_buffers_lens(args, needs, count, bufs, NULL);
}

static int32_t arg_int(mp_obj_t obj) {
    return (int32_t)mp_obj_get_int(obj);
}

/* The scalars args[first..first+n-1] into out[]. */
static void arg_ints(const mp_obj_t *args, int first, int n, int32_t *out) {
    for (int i = 0; i < n; ++i) {
        out[i] = arg_int(args[first + i]);
    }
}

static void check_or_raise(int result, const npu_err *e) {
    if (result < 0) {
        raise_err(e);
    }
}

/* ---- fully connected, softmax, quantize ------------------------------------------ */

static mp_obj_t npu_fully_connected_(size_t n_args, const mp_obj_t *args) {
    npu_need needs[MAX_BUFFERS];
    void *b[MAX_BUFFERS];
    long long lens[MAX_BUFFERS];
    npu_err e;
    int32_t s[7]; /* batches, in_depth, out_depth, input_offset, output_offset, act_min, act_max */
    (void)n_args;
    arg_ints(args, 6, 7, s);
    check_or_raise(npu_args_fully_connected(&e, needs, s[0], s[1], s[2], s[3], s[5], s[6]), &e);
    get_buffers_lens(args, needs, 6, b, lens);
    int32_t pairs = npu_fc_pairs(&e, needs, lens[4], lens[5], s[2]);
    check_or_raise(pairs, &e);
    check_or_raise(npu_check_shifts(&e, (const int32_t *)b[5], pairs), &e);
    npu_fully_connected_any(b[0], b[1], b[2], b[3], b[4], b[5], pairs > 1, s[0], s[1], s[2],
                            s[3], s[4], s[5], s[6]);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(fully_connected_obj, 13, 13, npu_fully_connected_);

static mp_obj_t npu_softmax_(size_t n_args, const mp_obj_t *args) {
    npu_need needs[2];
    void *b[2];
    npu_err e;
    int32_t s[5]; /* rows, depth, input_multiplier, input_left_shift, diff_min */
    (void)n_args;
    arg_ints(args, 2, 5, s);
    check_or_raise(npu_args_softmax(&e, needs, s[0], s[1], s[3], s[4]), &e);
    get_buffers(args, needs, 2, b);
    npu_softmax_s8(b[0], b[1], s[0], s[1], s[2], s[3], s[4]);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(softmax_obj, 7, 7, npu_softmax_);

static mp_obj_t quantize_common(const mp_obj_t *args, int to_int8) {
    npu_need needs[2];
    void *b[2];
    npu_err e;
    const int32_t n = arg_int(args[2]), zero_point = arg_int(args[4]);
    const float scale = (float)mp_obj_get_float(args[3]);
    check_or_raise(npu_args_quantize(&e, needs, to_int8, n, scale, zero_point), &e);
    get_buffers(args, needs, 2, b);
    if (to_int8) {
        npu_quantize_f32_s8(b[0], b[1], n, scale, zero_point);
    } else {
        npu_dequantize_s8_f32(b[0], b[1], n, scale, zero_point);
    }
    return mp_const_none;
}

static mp_obj_t npu_quantize_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return quantize_common(args, 1);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(quantize_obj, 5, 5, npu_quantize_);

static mp_obj_t npu_dequantize_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return quantize_common(args, 0);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(dequantize_obj, 5, 5, npu_dequantize_);

/* ---- convolution and pooling ---------------------------------------------------------- */

static mp_obj_t conv_common(const mp_obj_t *args, int depthwise) {
    npu_need needs[MAX_BUFFERS];
    void *b[MAX_BUFFERS];
    npu_err e;
    npu_window g = {0};
    int32_t s[19];
    /* batches, in_h, in_w, in_c, out_h, out_w, channels, k_h, k_w, stride_h, stride_w,
     * dilation_h, dilation_w, pad_h, pad_w, input_offset, output_offset, act_min, act_max */
    arg_ints(args, 6, 19, s);
    g.batches = s[0], g.in_h = s[1], g.in_w = s[2], g.in_c = s[3], g.out_h = s[4];
    g.out_w = s[5], g.k_h = s[7], g.k_w = s[8], g.stride_h = s[9], g.stride_w = s[10];
    g.dilation_h = s[11], g.dilation_w = s[12], g.pad_h = s[13], g.pad_w = s[14];
    check_or_raise(npu_args_conv(&e, needs, &g, depthwise, s[6], s[15], s[17], s[18]), &e);
    get_buffers(args, needs, 6, b);
    check_or_raise(npu_check_shifts(&e, (const int32_t *)b[5], g.out_c), &e);
    if (depthwise) {
        npu_depthwise_conv2d_any(b[0], b[1], b[2], b[3], b[4], b[5], &g, s[15], s[16], s[17],
                                 s[18]);
    } else {
        npu_conv2d_any(b[0], b[1], b[2], b[3], b[4], b[5], &g, s[15], s[16], s[17], s[18]);
    }
    return mp_const_none;
}

static mp_obj_t npu_conv2d_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return conv_common(args, 0);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(conv2d_obj, 25, 25, npu_conv2d_);

static mp_obj_t npu_depthwise_conv2d_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return conv_common(args, 1);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(depthwise_conv2d_obj, 25, 25, npu_depthwise_conv2d_);

/* The int8 pools, or their int16 twins (wide = 1). */
static mp_obj_t pool_common(const mp_obj_t *args, int average, int wide) {
    npu_need needs[2];
    void *b[2];
    npu_err e;
    npu_window g = {0};
    int32_t s[14]; /* batches, in_h, in_w, channels, out_h, out_w, k_h, k_w, stride_h,
                    * stride_w, pad_h, pad_w, act_min, act_max */
    arg_ints(args, 2, 14, s);
    g.batches = s[0], g.in_h = s[1], g.in_w = s[2], g.in_c = s[3], g.out_h = s[4];
    g.out_w = s[5], g.k_h = s[6], g.k_w = s[7], g.stride_h = s[8], g.stride_w = s[9];
    g.pad_h = s[10], g.pad_w = s[11];
    check_or_raise(npu_args_pool(&e, needs, &g, s[12], s[13], wide), &e);
    get_buffers(args, needs, 2, b);
    if (wide && average) {
        npu_average_pool2d_s16(b[0], b[1], &g, s[12], s[13]);
    } else if (wide) {
        npu_max_pool2d_s16(b[0], b[1], &g, s[12], s[13]);
    } else if (average) {
        npu_average_pool2d_any(b[0], b[1], &g, s[12], s[13]);
    } else {
        npu_max_pool2d_any(b[0], b[1], &g, s[12], s[13]);
    }
    return mp_const_none;
}

static mp_obj_t npu_average_pool2d_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return pool_common(args, 1, 0);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(average_pool2d_obj, 16, 16, npu_average_pool2d_);

static mp_obj_t npu_max_pool2d_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return pool_common(args, 0, 0);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(max_pool2d_obj, 16, 16, npu_max_pool2d_);

static mp_obj_t npu_average_pool2d_s16_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return pool_common(args, 1, 1);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(average_pool2d_s16_obj, 16, 16,
                                           npu_average_pool2d_s16_);

static mp_obj_t npu_max_pool2d_s16_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return pool_common(args, 0, 1);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(max_pool2d_s16_obj, 16, 16, npu_max_pool2d_s16_);

/* ---- elementwise, lookup table, copy, mean ---------------------------------------------- */

static mp_obj_t elementwise_common(const mp_obj_t *args, int is_add) {
    npu_need needs[3];
    void *b[3];
    npu_err e;
    npu_arith p = {0};
    int32_t s[12];
    for (int k = 0; k < 4; ++k) {
        p.dims[k] = arg_int(args[3 + k]);
        p.strides1[k] = arg_int(args[7 + k]);
        p.strides2[k] = arg_int(args[11 + k]);
    }
    if (is_add) {
        /* input1_offset, input2_offset, left_shift, input1_multiplier, input1_shift,
         * input2_multiplier, input2_shift, output_multiplier, output_shift, output_offset,
         * act_min, act_max */
        arg_ints(args, 15, 12, s);
        p.input1_offset = s[0], p.input2_offset = s[1], p.left_shift = s[2];
        p.input1_multiplier = s[3], p.input1_shift = s[4], p.input2_multiplier = s[5];
        p.input2_shift = s[6], p.output_multiplier = s[7], p.output_shift = s[8];
        p.output_offset = s[9], p.act_min = s[10], p.act_max = s[11];
    } else {
        /* input1_offset, input2_offset, output_multiplier, output_shift, output_offset,
         * act_min, act_max */
        arg_ints(args, 15, 7, s);
        p.input1_offset = s[0], p.input2_offset = s[1], p.output_multiplier = s[2];
        p.output_shift = s[3], p.output_offset = s[4], p.act_min = s[5], p.act_max = s[6];
    }
    check_or_raise(npu_args_arith(&e, needs, &p, is_add), &e);
    get_buffers(args, needs, 3, b);
    if (is_add) {
        npu_add_s8_any(b[0], b[1], b[2], &p);
    } else {
        npu_mul_s8(b[0], b[1], b[2], &p);
    }
    return mp_const_none;
}

static mp_obj_t npu_add_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return elementwise_common(args, 1);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(add_obj, 27, 27, npu_add_);

static mp_obj_t npu_mul_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return elementwise_common(args, 0);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(mul_obj, 22, 22, npu_mul_);

static mp_obj_t npu_lut_(size_t n_args, const mp_obj_t *args) {
    npu_need needs[3];
    void *b[3];
    npu_err e;
    const int32_t n = arg_int(args[3]);
    (void)n_args;
    check_or_raise(npu_args_lut(&e, needs, n), &e);
    get_buffers(args, needs, 3, b);
    npu_lut_s8(b[0], b[1], b[2], n);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(lut_obj, 4, 4, npu_lut_);

static mp_obj_t npu_copy_(size_t n_args, const mp_obj_t *args) {
    npu_need needs[2];
    void *b[2];
    npu_err e;
    npu_copy p = {0};
    mp_buffer_info_t out;
    (void)n_args;
    for (int k = 0; k < 4; ++k) {
        p.dims[k] = arg_int(args[2 + k]);
        p.in_strides[k] = arg_int(args[6 + k]);
        p.out_strides[k] = arg_int(args[10 + k]);
    }
    p.out_offset = arg_int(args[14]), p.fill = arg_int(args[15]), p.fill_value = arg_int(args[16]);
    check_or_raise(npu_args_copy(&e, needs, &p), &e);
    get_buffers(args, needs, 2, b);
    mp_get_buffer_raise(args[1], &out, MP_BUFFER_WRITE); /* its whole length: the fill's */
    npu_copy_s8(b[0], b[1], (int32_t)out.len, &p);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(copy_obj, 17, 17, npu_copy_);

static mp_obj_t npu_mean_(size_t n_args, const mp_obj_t *args) {
    npu_need needs[2];
    void *b[2];
    npu_err e;
    int32_t s[8]; /* batches, in_h, in_w, channels, input_offset, multiplier, shift,
                   * output_offset */
    (void)n_args;
    arg_ints(args, 2, 8, s);
    check_or_raise(npu_args_mean(&e, needs, s[0], s[1], s[2], s[3], s[4], s[6], s[7]), &e);
    get_buffers(args, needs, 2, b);
    npu_mean_s8(b[0], b[1], s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(mean_obj, 10, 10, npu_mean_);

/* ---- the 16x8 kernels (int16 activations, int8 weights): _kernels.c's calls -------------- */

/* The 16x8 requantization's values, once the buffers are held (mult, shift, bias). */
static void check_requant_s16(void **b, int32_t n) {
    npu_err e;
    check_or_raise(npu_check_requant_s16(&e, b[4], b[5], b[2], n), &e);
}

static mp_obj_t npu_fully_connected_s16_(size_t n_args, const mp_obj_t *args) {
    npu_need needs[MAX_BUFFERS];
    void *b[MAX_BUFFERS];
    npu_err e;
    int32_t s[5]; /* batches, in_depth, out_depth, act_min, act_max */
    (void)n_args;
    arg_ints(args, 6, 5, s);
    check_or_raise(npu_args_fully_connected_s16(&e, needs, s[0], s[1], s[2], s[3], s[4]), &e);
    get_buffers(args, needs, 6, b);
    check_requant_s16(b, s[2]);
    npu_fully_connected_s16(b[0], b[1], b[2], b[3], b[4], b[5], s[0], s[1], s[2], s[3], s[4]);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(fully_connected_s16_obj, 11, 11,
                                           npu_fully_connected_s16_);

static mp_obj_t conv_s16_common(const mp_obj_t *args, int depthwise) {
    npu_need needs[MAX_BUFFERS];
    void *b[MAX_BUFFERS];
    npu_err e;
    npu_window g = {0};
    int32_t s[17];
    /* batches, in_h, in_w, in_c, out_h, out_w, channels, k_h, k_w, stride_h, stride_w,
     * dilation_h, dilation_w, pad_h, pad_w, act_min, act_max */
    arg_ints(args, 6, 17, s);
    g.batches = s[0], g.in_h = s[1], g.in_w = s[2], g.in_c = s[3], g.out_h = s[4];
    g.out_w = s[5], g.k_h = s[7], g.k_w = s[8], g.stride_h = s[9], g.stride_w = s[10];
    g.dilation_h = s[11], g.dilation_w = s[12], g.pad_h = s[13], g.pad_w = s[14];
    check_or_raise(npu_args_conv_s16(&e, needs, &g, depthwise, s[6], s[15], s[16]), &e);
    get_buffers(args, needs, 6, b);
    check_requant_s16(b, g.out_c);
    npu_conv2d_s16(b[0], b[1], b[2], b[3], b[4], b[5], &g, depthwise, s[15], s[16]);
    return mp_const_none;
}

static mp_obj_t npu_conv2d_s16_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return conv_s16_common(args, 0);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(conv2d_s16_obj, 23, 23, npu_conv2d_s16_);

static mp_obj_t npu_depthwise_conv2d_s16_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return conv_s16_common(args, 1);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(depthwise_conv2d_s16_obj, 23, 23,
                                           npu_depthwise_conv2d_s16_);

static mp_obj_t quantize_s16_common(const mp_obj_t *args, int to_int16) {
    npu_need needs[2];
    void *b[2];
    npu_err e;
    const int32_t n = arg_int(args[2]), zero_point = arg_int(args[4]);
    const float scale = (float)mp_obj_get_float(args[3]);
    check_or_raise(npu_args_quantize_s16(&e, needs, to_int16, n, scale, zero_point), &e);
    get_buffers(args, needs, 2, b);
    if (to_int16) {
        npu_quantize_f32_s16(b[0], b[1], n, scale, zero_point);
    } else {
        npu_dequantize_s16_f32(b[0], b[1], n, scale, zero_point);
    }
    return mp_const_none;
}

static mp_obj_t npu_quantize_s16_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return quantize_s16_common(args, 1);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(quantize_s16_obj, 5, 5, npu_quantize_s16_);

static mp_obj_t npu_dequantize_s16_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return quantize_s16_common(args, 0);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(dequantize_s16_obj, 5, 5, npu_dequantize_s16_);

static mp_obj_t elementwise_s16_common(const mp_obj_t *args, int is_add) {
    npu_need needs[3];
    void *b[3];
    npu_err e;
    npu_arith p = {0};
    int32_t s[9];
    for (int k = 0; k < 4; ++k) {
        p.dims[k] = arg_int(args[3 + k]);
        p.strides1[k] = arg_int(args[7 + k]);
        p.strides2[k] = arg_int(args[11 + k]);
    }
    /* the int8 calls without the offsets (zero points 0) */
    if (is_add) {
        /* left_shift, input1_multiplier, input1_shift, input2_multiplier, input2_shift,
         * output_multiplier, output_shift, act_min, act_max */
        arg_ints(args, 15, 9, s);
        p.left_shift = s[0], p.input1_multiplier = s[1], p.input1_shift = s[2];
        p.input2_multiplier = s[3], p.input2_shift = s[4], p.output_multiplier = s[5];
        p.output_shift = s[6], p.act_min = s[7], p.act_max = s[8];
    } else {
        /* output_multiplier, output_shift, act_min, act_max */
        arg_ints(args, 15, 4, s);
        p.output_multiplier = s[0], p.output_shift = s[1], p.act_min = s[2], p.act_max = s[3];
    }
    check_or_raise(npu_args_arith_s16(&e, needs, &p, is_add), &e);
    get_buffers(args, needs, 3, b);
    if (is_add) {
        npu_add_s16(b[0], b[1], b[2], &p);
    } else {
        npu_mul_s16(b[0], b[1], b[2], &p);
    }
    return mp_const_none;
}

static mp_obj_t npu_add_s16_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return elementwise_s16_common(args, 1);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(add_s16_obj, 24, 24, npu_add_s16_);

static mp_obj_t npu_mul_s16_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return elementwise_s16_common(args, 0);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(mul_s16_obj, 19, 19, npu_mul_s16_);

static mp_obj_t npu_rescale_s16_(size_t n_args, const mp_obj_t *args) {
    npu_need needs[2];
    void *b[2];
    npu_err e;
    int32_t s[7]; /* n, pos_multiplier, pos_shift, neg_multiplier, neg_shift, act_min, act_max */
    (void)n_args;
    arg_ints(args, 2, 7, s);
    check_or_raise(npu_args_rescale_s16(&e, needs, s[0], s[2], s[4], s[5], s[6]), &e);
    get_buffers(args, needs, 2, b);
    npu_rescale_s16(b[0], b[1], s[0], s[1], s[2], s[3], s[4], s[5], s[6]);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(rescale_s16_obj, 9, 9, npu_rescale_s16_);

static mp_obj_t npu_lut_s8_s16_(size_t n_args, const mp_obj_t *args) {
    npu_need needs[3];
    void *b[3];
    npu_err e;
    const int32_t n = arg_int(args[3]);
    (void)n_args;
    check_or_raise(npu_args_lut_s8_s16(&e, needs, n), &e);
    get_buffers(args, needs, 3, b);
    npu_lut_s8_s16(b[0], b[1], b[2], n);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(lut_s8_s16_obj, 4, 4, npu_lut_s8_s16_);

static mp_obj_t npu_requantize_s16_s8_(size_t n_args, const mp_obj_t *args) {
    npu_need needs[2];
    void *b[2];
    npu_err e;
    int32_t s[4]; /* n, multiplier, shift, output_offset */
    (void)n_args;
    arg_ints(args, 2, 4, s);
    check_or_raise(npu_args_requantize_s16_s8(&e, needs, s[0], s[2], s[3]), &e);
    get_buffers(args, needs, 2, b);
    npu_requantize_s16_s8(b[0], b[1], s[0], s[1], s[2], s[3]);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(requantize_s16_s8_obj, 6, 6, npu_requantize_s16_s8_);

static mp_obj_t npu_softmax_s16_(size_t n_args, const mp_obj_t *args) {
    npu_need needs[4];
    void *b[4];
    npu_err e;
    int32_t s[4]; /* rows, depth, input_multiplier, input_shift */
    (void)n_args;
    arg_ints(args, 4, 4, s);
    check_or_raise(npu_args_softmax_s16(&e, needs, s[0], s[1], s[3]), &e);
    get_buffers(args, needs, 4, b);
    npu_softmax_s16(b[0], b[1], b[2], b[3], s[0], s[1], s[2], s[3]);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(softmax_s16_obj, 8, 8, npu_softmax_s16_);

/* logistic_s16 (tanh 0) or tanh_s16 (1) */
static mp_obj_t sigmoid_s16_common(const mp_obj_t *args, int tanh) {
    npu_need needs[3];
    void *b[3];
    npu_err e;
    int32_t s[3]; /* n, input_multiplier, input_left_shift */
    arg_ints(args, 3, 3, s);
    check_or_raise(npu_args_sigmoid_s16(&e, needs, s[0], s[1], s[2]), &e);
    get_buffers(args, needs, 3, b);
    npu_sigmoid_s16(b[0], b[1], b[2], s[0], s[1], s[2], tanh);
    return mp_const_none;
}

static mp_obj_t npu_logistic_s16_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return sigmoid_s16_common(args, 0);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(logistic_s16_obj, 6, 6, npu_logistic_s16_);

static mp_obj_t npu_tanh_s16_(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return sigmoid_s16_common(args, 1);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(tanh_s16_obj, 6, 6, npu_tanh_s16_);

static mp_obj_t npu_mean_s16_(size_t n_args, const mp_obj_t *args) {
    npu_need needs[2];
    void *b[2];
    npu_err e;
    int32_t s[6]; /* batches, in_h, in_w, channels, multiplier, shift */
    (void)n_args;
    arg_ints(args, 2, 6, s);
    check_or_raise(npu_args_mean_s16(&e, needs, s[0], s[1], s[2], s[3], s[5]), &e);
    get_buffers(args, needs, 2, b);
    npu_mean_s16(b[0], b[1], s[0], s[1], s[2], s[3], s[4], s[5]);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(mean_s16_obj, 8, 8, npu_mean_s16_);

/* ---- the module --------------------------------------------------------------------- */

static const MP_DEFINE_STR_OBJ(backend_obj, NPU_BACKEND);

static const mp_rom_map_elem_t npu_module_globals_table[] = {
    {MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_npu)},
    /* what `npu info` reports after "native": the library the MAC kernels run on */
    {MP_ROM_QSTR(MP_QSTR_BACKEND), MP_ROM_PTR(&backend_obj)},
    {MP_ROM_QSTR(MP_QSTR_fully_connected), MP_ROM_PTR(&fully_connected_obj)},
    {MP_ROM_QSTR(MP_QSTR_softmax), MP_ROM_PTR(&softmax_obj)},
    {MP_ROM_QSTR(MP_QSTR_quantize), MP_ROM_PTR(&quantize_obj)},
    {MP_ROM_QSTR(MP_QSTR_dequantize), MP_ROM_PTR(&dequantize_obj)},
    {MP_ROM_QSTR(MP_QSTR_conv2d), MP_ROM_PTR(&conv2d_obj)},
    {MP_ROM_QSTR(MP_QSTR_depthwise_conv2d), MP_ROM_PTR(&depthwise_conv2d_obj)},
    {MP_ROM_QSTR(MP_QSTR_average_pool2d), MP_ROM_PTR(&average_pool2d_obj)},
    {MP_ROM_QSTR(MP_QSTR_max_pool2d), MP_ROM_PTR(&max_pool2d_obj)},
    {MP_ROM_QSTR(MP_QSTR_add), MP_ROM_PTR(&add_obj)},
    {MP_ROM_QSTR(MP_QSTR_mul), MP_ROM_PTR(&mul_obj)},
    {MP_ROM_QSTR(MP_QSTR_lut), MP_ROM_PTR(&lut_obj)},
    {MP_ROM_QSTR(MP_QSTR_copy), MP_ROM_PTR(&copy_obj)},
    {MP_ROM_QSTR(MP_QSTR_mean), MP_ROM_PTR(&mean_obj)},
    /* 16x8: npufw.driver puts these in the kernel set too (viper's are in npufw.kernels16) */
    {MP_ROM_QSTR(MP_QSTR_fully_connected_s16), MP_ROM_PTR(&fully_connected_s16_obj)},
    {MP_ROM_QSTR(MP_QSTR_conv2d_s16), MP_ROM_PTR(&conv2d_s16_obj)},
    {MP_ROM_QSTR(MP_QSTR_depthwise_conv2d_s16), MP_ROM_PTR(&depthwise_conv2d_s16_obj)},
    {MP_ROM_QSTR(MP_QSTR_average_pool2d_s16), MP_ROM_PTR(&average_pool2d_s16_obj)},
    {MP_ROM_QSTR(MP_QSTR_max_pool2d_s16), MP_ROM_PTR(&max_pool2d_s16_obj)},
    {MP_ROM_QSTR(MP_QSTR_quantize_s16), MP_ROM_PTR(&quantize_s16_obj)},
    {MP_ROM_QSTR(MP_QSTR_dequantize_s16), MP_ROM_PTR(&dequantize_s16_obj)},
    {MP_ROM_QSTR(MP_QSTR_add_s16), MP_ROM_PTR(&add_s16_obj)},
    {MP_ROM_QSTR(MP_QSTR_mul_s16), MP_ROM_PTR(&mul_s16_obj)},
    {MP_ROM_QSTR(MP_QSTR_rescale_s16), MP_ROM_PTR(&rescale_s16_obj)},
    {MP_ROM_QSTR(MP_QSTR_lut_s8_s16), MP_ROM_PTR(&lut_s8_s16_obj)},
    {MP_ROM_QSTR(MP_QSTR_requantize_s16_s8), MP_ROM_PTR(&requantize_s16_s8_obj)},
    {MP_ROM_QSTR(MP_QSTR_softmax_s16), MP_ROM_PTR(&softmax_s16_obj)},
    {MP_ROM_QSTR(MP_QSTR_logistic_s16), MP_ROM_PTR(&logistic_s16_obj)},
    {MP_ROM_QSTR(MP_QSTR_tanh_s16), MP_ROM_PTR(&tanh_s16_obj)},
    {MP_ROM_QSTR(MP_QSTR_mean_s16), MP_ROM_PTR(&mean_s16_obj)},
};
static MP_DEFINE_CONST_DICT(npu_module_globals, npu_module_globals_table);

const mp_obj_module_t npu_user_cmodule = {
    .base = {&mp_type_module},
    .globals = (mp_obj_dict_t *)&npu_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_npu, npu_user_cmodule);
