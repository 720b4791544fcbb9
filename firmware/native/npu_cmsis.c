/* npu_cmsis.c - the module's MAC kernels on CMSIS-NN where that is bit-exact with TFLite
 * Micro, else the portable core (npu_cmsis.h). */
#include "npu_cmsis.h"

void npu_fully_connected_any(const int8_t *input, const int8_t *weights, const int32_t *bias,
                             int8_t *output, const int32_t *mult, const int32_t *shift,
                             int32_t batches, int32_t in_depth, int32_t out_depth,
                             int32_t input_offset, int32_t output_offset, int32_t act_min,
                             int32_t act_max) {
    npu_fully_connected(input, weights, bias, output, mult, shift, batches, in_depth, out_depth,
                        input_offset, output_offset, act_min, act_max, NULL);
}

void npu_conv2d_any(const int8_t *input, const int8_t *weights, const int32_t *bias,
                    int8_t *output, const int32_t *mult, const int32_t *shift,
                    const npu_window *g, int32_t input_offset, int32_t output_offset,
                    int32_t act_min, int32_t act_max) {
    npu_conv2d_s8(input, weights, bias, output, mult, shift, g, input_offset, output_offset,
                  act_min, act_max, NULL);
}

void npu_depthwise_conv2d_any(const int8_t *input, const int8_t *weights, const int32_t *bias,
                              int8_t *output, const int32_t *mult, const int32_t *shift,
                              const npu_window *g, int32_t input_offset, int32_t output_offset,
                              int32_t act_min, int32_t act_max) {
    npu_depthwise_conv2d_s8(input, weights, bias, output, mult, shift, g, input_offset,
                            output_offset, act_min, act_max, NULL);
}

void npu_average_pool2d_any(const int8_t *input, int8_t *output, const npu_window *g,
                            int32_t act_min, int32_t act_max) {
    npu_average_pool2d_s8(input, output, g, act_min, act_max);
}

void npu_max_pool2d_any(const int8_t *input, int8_t *output, const npu_window *g,
                        int32_t act_min, int32_t act_max) {
    npu_max_pool2d_s8(input, output, g, act_min, act_max);
}

void npu_add_s8_any(const int8_t *input1, const int8_t *input2, int8_t *output,
                    const npu_arith *p) {
    npu_add_s8(input1, input2, output, p);
}
