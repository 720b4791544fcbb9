/* npu_cmsis.h - the module's MAC kernels: CMSIS-NN's where it is built in (NPU_CMSIS_NN) and
 * bit-exact with TFLite Micro's reference kernels, npu_kernels.c's portable C otherwise.
 * Same contract as the npu_kernels.h function each one is named after. */
#ifndef NPU_CMSIS_H
#define NPU_CMSIS_H

#include "npu_kernels.h"

#ifdef NPU_CMSIS_NN
#define NPU_BACKEND "cmsis-nn"
#else
#define NPU_BACKEND "portable C"
#endif

void npu_fully_connected_any(const int8_t *input, const int8_t *weights, const int32_t *bias,
                             int8_t *output, const int32_t *mult, const int32_t *shift,
                             int per_channel, int32_t batches, int32_t in_depth,
                             int32_t out_depth, int32_t input_offset, int32_t output_offset,
                             int32_t act_min, int32_t act_max);
void npu_conv2d_any(const int8_t *input, const int8_t *weights, const int32_t *bias,
                    int8_t *output, const int32_t *mult, const int32_t *shift,
                    const npu_window *g, int32_t input_offset, int32_t output_offset,
                    int32_t act_min, int32_t act_max);
void npu_depthwise_conv2d_any(const int8_t *input, const int8_t *weights, const int32_t *bias,
                              int8_t *output, const int32_t *mult, const int32_t *shift,
                              const npu_window *g, int32_t input_offset, int32_t output_offset,
                              int32_t act_min, int32_t act_max);
void npu_average_pool2d_any(const int8_t *input, int8_t *output, const npu_window *g,
                            int32_t act_min, int32_t act_max);
void npu_max_pool2d_any(const int8_t *input, int8_t *output, const npu_window *g,
                        int32_t act_min, int32_t act_max);
void npu_add_s8_any(const int8_t *input1, const int8_t *input2, int8_t *output,
                    const npu_arith *p);

#endif /* NPU_CMSIS_H */
