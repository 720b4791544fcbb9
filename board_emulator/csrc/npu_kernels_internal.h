/* npu_kernels_internal.h - what npu_kernels.c and its ISA-specific twins share.
 * Not part of the public API (npu_kernels.h). */
#ifndef NPU_KERNELS_INTERNAL_H
#define NPU_KERNELS_INTERNAL_H

#include <stddef.h>

#include "npu_kernels.h"

/* x86 builds with GCC or clang get the AVX2 twins, chosen at run time. */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(NPU_NO_SIMD)
#define NPU_HAVE_X86_DISPATCH 1
#else
#define NPU_HAVE_X86_DISPATCH 0
#endif

#if NPU_HAVE_X86_DISPATCH
size_t npu_conv2d_s8_avx2_scratch(const npu_window *g);
void npu_conv2d_s8_avx2(const int8_t *input, const int8_t *weights, const int32_t *bias,
                        int8_t *output, const int32_t *mult, const int32_t *shift,
                        const npu_window *g, int32_t input_offset, int32_t output_offset,
                        int32_t act_min, int32_t act_max, void *scratch);
size_t npu_depthwise_conv2d_s8_avx2_scratch(const npu_window *g);
void npu_depthwise_conv2d_s8_avx2(const int8_t *input, const int8_t *weights,
                                  const int32_t *bias, int8_t *output, const int32_t *mult,
                                  const int32_t *shift, const npu_window *g,
                                  int32_t input_offset, int32_t output_offset, int32_t act_min,
                                  int32_t act_max, void *scratch);
size_t npu_fully_connected_avx2_scratch(int32_t batches, int32_t in_depth);
void npu_fully_connected_avx2(const int8_t *input, const int8_t *weights, const int32_t *bias,
                              int8_t *output, const int32_t *mult, const int32_t *shift,
                              int per_channel, int32_t batches, int32_t in_depth,
                              int32_t out_depth, int32_t input_offset, int32_t output_offset,
                              int32_t act_min, int32_t act_max, void *scratch);
size_t npu_add_s8_avx2_run(const int8_t *a, const int8_t *b, int8_t *out, size_t n,
                           const npu_arith *p);
#endif

#endif /* NPU_KERNELS_INTERNAL_H */
