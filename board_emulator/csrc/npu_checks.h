/* npu_checks.h - what a kernel call must be given, checked once for both bindings.
 *
 * The two thin bindings of npu_kernels.c (_kernels.c for CPython, firmware/native/npu_module.c
 * for MicroPython) parse their arguments, then ask the function for the kernel here: it checks
 * every scalar and says which buffers the call needs and how many elements each must hold.
 * The binding gets each buffer its own way and hands its size to npu_check_buffer. So the
 * limits and the sizes are written once, and both bindings refuse the same calls with the
 * same words. Plain C99, no allocation; a refusal is -1 and a message in npu_err.
 */
#ifndef NPU_CHECKS_H
#define NPU_CHECKS_H

#include <stdint.h>

#include "npu_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The dot product accumulates 128 * 128 per term in int32. */
#define NPU_MAX_IN_DEPTH 131071
/* k_h * k_w * in_c products of (x + offset) * w, |each| <= 256 * 128, fit int32. */
#define MAX_WINDOW_MACS 65535
/* Input offsets are minus an int8 zero point, as in TFLite Micro: (x + offset) is then in
 * [-255, 255] and its products with int8 weights fit the AVX2 twins' int16 lanes.
 * npu_sdk/ops.py's PARAM_RANGES says the same (tests/unit/test_registry.py). */
#define NPU_INPUT_OFFSET_MIN (-127)
#define NPU_INPUT_OFFSET_MAX 128
/* in_h * in_w values of |x + offset| <= 256 summed in int32. */
#define NPU_MAX_MEAN_COUNT (1LL << 23)

typedef enum { NPU_I8, NPU_I32, NPU_F32, NPU_I16, NPU_I64 } npu_elem;

extern const char *const npu_elem_names[];
extern const int npu_elem_sizes[];

/* One buffer argument: its name in messages, element type, whether the kernel writes it,
 * whether None may stand for it (bias), and the elements it must hold. */
typedef struct {
    const char *name;
    npu_elem kind;
    int writable, optional;
    long long count;
} npu_need;

typedef struct {
    char msg[200];
} npu_err;

/* Each returns the number of buffer arguments (needs[0..n-1], in argument order), or -1. */
/* FULLY_CONNECTED's mult and shift hold a pair per output row, or one pair for all rows
 * (per-tensor weights: what the blob stores then). needs[4..5] ask for one; once the binding
 * holds them, npu_fc_pairs says which it is. */
int npu_args_fully_connected(npu_err *e, npu_need *needs, int32_t batches, int32_t in_depth,
                             int32_t out_depth, int32_t input_offset, int32_t act_min,
                             int32_t act_max);
/* 1 when mult and shift are one int32 each, else out_depth after checking both hold that
 * many; -1 when they do not. The kernels take a pair per row: a binding given one pair
 * repeats it per call. */
int npu_fc_pairs(npu_err *e, const npu_need *needs, long long mult_len, long long shift_len,
                 int32_t out_depth);
/* 16x8 FULLY_CONNECTED: int16 inp and out, int64 bias (optional), a pair per row; once the
 * binding holds mult, shift and bias, npu_check_requant_s16. */
int npu_args_fully_connected_s16(npu_err *e, npu_need *needs, int32_t batches,
                                 int32_t in_depth, int32_t out_depth, int32_t act_min,
                                 int32_t act_max);
int npu_args_softmax(npu_err *e, npu_need *needs, int32_t rows, int32_t depth,
                     int32_t input_left_shift, int32_t diff_min);
/* QUANTIZE (to_int8) and DEQUANTIZE. */
int npu_args_quantize(npu_err *e, npu_need *needs, int to_int8, int32_t n, float scale,
                      int32_t zero_point);
/* QUANTIZE_S16 (to_int16) and DEQUANTIZE_S16. */
int npu_args_quantize_s16(npu_err *e, npu_need *needs, int to_int16, int32_t n, float scale,
                          int32_t zero_point);
/* CONV_2D and DEPTHWISE_CONV_2D: `channels` is out_c, or the depth multiplier (depthwise);
 * fills in g->out_c and g->depth_multiplier. */
int npu_args_conv(npu_err *e, npu_need *needs, npu_window *g, int depthwise, int32_t channels,
                  int32_t input_offset, int32_t act_min, int32_t act_max);
/* 16x8 CONV_2D and DEPTHWISE_CONV_2D: as npu_args_conv with int16 inp and out, an int64
 * bias, no input offset; then npu_check_requant_s16. */
int npu_args_conv_s16(npu_err *e, npu_need *needs, npu_window *g, int depthwise,
                      int32_t channels, int32_t act_min, int32_t act_max);
/* The pools (`wide`: the 16x8 ones, int16 in and out): fills in out_c, the dilations and
 * the depth multiplier of g. */
int npu_args_pool(npu_err *e, npu_need *needs, npu_window *g, int32_t act_min, int32_t act_max,
                  int wide);
int npu_args_arith(npu_err *e, npu_need *needs, const npu_arith *p, int is_add);
/* 16x8 ADD and MUL: int16 buffers, offsets 0, ADD's left_shift at most 15. */
int npu_args_arith_s16(npu_err *e, npu_need *needs, const npu_arith *p, int is_add);
/* 16x8 RELU, RELU6, LEAKY_RELU. */
int npu_args_rescale_s16(npu_err *e, npu_need *needs, int32_t n, int32_t pos_shift,
                         int32_t neg_shift, int32_t act_min, int32_t act_max);
/* QUANTIZE int8 -> int16 (a table) and int16 -> int8. */
int npu_args_lut_s8_s16(npu_err *e, npu_need *needs, int32_t n);
int npu_args_requantize_s16_s8(npu_err *e, npu_need *needs, int32_t n, int32_t shift,
                               int32_t output_offset);
/* 16x8 SOFTMAX: needs inp, out, exp_lut, recip_lut. */
int npu_args_softmax_s16(npu_err *e, npu_need *needs, int32_t rows, int32_t depth,
                         int32_t shift);
/* 16x8 LOGISTIC and TANH: |x * mult| + rounding inside int32. */
int npu_args_sigmoid_s16(npu_err *e, npu_need *needs, int32_t n, int32_t mult,
                         int32_t left_shift);
int npu_args_lut(npu_err *e, npu_need *needs, int32_t n);
int npu_args_copy(npu_err *e, npu_need *needs, const npu_copy *p);
int npu_args_mean(npu_err *e, npu_need *needs, int32_t batches, int32_t in_h, int32_t in_w,
                  int32_t channels, int32_t input_offset, int32_t shift, int32_t output_offset);

int npu_args_mean_s16(npu_err *e, npu_need *needs, int32_t batches, int32_t in_h, int32_t in_w,
                      int32_t channels, int32_t shift);

/* A buffer of `len` bytes at `address` for `need`: large enough, aligned for its elements. */
int npu_check_buffer(npu_err *e, const npu_need *need, long long len, uintptr_t address);

/* The 16x8 kernels' requantization (TFLM's 64-bit MultiplyByQuantizedMultiplier): shifts in
 * [-31, 7], multipliers >= 0, |bias| <= 2^46 (bias may be NULL) keep it inside int64. */
#define NPU_MAX_BIAS_S64 (1LL << 46)
int npu_check_requant_s16(npu_err *e, const int32_t *mult, const int32_t *shift,
                          const int64_t *bias, int32_t n);

/* Per-channel shifts feed C shift operators: each in [-31, 31]. */
int npu_check_shifts(npu_err *e, const int32_t *shift, int32_t n);

/* A window's geometry: sizes, strides, dilations, padding and spans in range. */
int npu_check_window(npu_err *e, const npu_window *g);

/* The scalar checks the functions above are made of. */
int npu_check_positive(npu_err *e, const char *name, long long value);
int npu_check_range(npu_err *e, const char *name, long long value, long long lo, long long hi);

#ifdef __cplusplus
}
#endif

#endif /* NPU_CHECKS_H */
