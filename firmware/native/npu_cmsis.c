/* npu_cmsis.c - the module's MAC kernels on CMSIS-NN where that is bit-exact with TFLite
 * Micro, else the portable core (npu_cmsis.h).
 *
 * With NPU_CMSIS_NN each kernel hands its call to CMSIS-NN's s8 kernel (Helium on the
 * Cortex-M55, the DSP extension on the Cortex-M4), the ones TFLite Micro itself calls on
 * Cortex-M, with the same parameters TFLite Micro passes (input_offset = -input zero point,
 * output_offset = output zero point); the op conformance suite proves each bit-exact on
 * both qemu images. A call CMSIS-NN does not take (a scratch need beyond NPU_CMSIS_SCRATCH,
 * no bias, broadcasting ADD, an argument it refuses) runs the portable C instead. */
#include "npu_cmsis.h"

#ifdef NPU_CMSIS_NN
#include "arm_nnfunctions.h"

#ifndef NPU_CMSIS_SCRATCH
#define NPU_CMSIS_SCRATCH 16384 /* bytes: im2col columns, kernel sums, pooling sums */
#endif

static int32_t scratch[NPU_CMSIS_SCRATCH / sizeof(int32_t)];

/* ctx for a call needing `size` bytes of scratch; 0 when the buffer is too small. */
static int context(cmsis_nn_context *ctx, int32_t size) {
    if (size < 0 || size > (int32_t)sizeof scratch) {
        return 0;
    }
    ctx->buf = size > 0 ? scratch : NULL;
    ctx->size = size;
    return 1;
}

static cmsis_nn_dims dims(int32_t n, int32_t h, int32_t w, int32_t c) {
    cmsis_nn_dims d = {n, h, w, c};
    return d;
}

static int cmsis_fully_connected(const int8_t *input, const int8_t *weights, const int32_t *bias,
                                 int8_t *output, const int32_t *mult, const int32_t *shift,
                                 int per_channel, int32_t batches, int32_t in_depth,
                                 int32_t out_depth, int32_t input_offset, int32_t output_offset,
                                 int32_t act_min, int32_t act_max) {
    cmsis_nn_context ctx;
    const cmsis_nn_fc_params fc = {input_offset, 0, output_offset, {act_min, act_max}};
    const cmsis_nn_dims in = dims(batches, 1, 1, in_depth), filter = dims(in_depth, 1, 1, out_depth),
                        bias_dims = dims(1, 1, 1, out_depth), out = dims(batches, 1, 1, out_depth);
    if (!context(&ctx, arm_fully_connected_s8_get_buffer_size(&filter))) {
        return 0;
    }
#if defined(ARM_MATH_MVEI)
    /* Helium folds the bias and the input offset into per-row kernel sums first */
    arm_vector_sum_s8(ctx.buf, in_depth, out_depth, weights, input_offset, 0, bias);
#endif
    if (!per_channel) { /* per-tensor weights: TFLM calls arm_fully_connected_s8 */
        const cmsis_nn_per_tensor_quant_params q = {*mult, *shift};
        return arm_fully_connected_s8(&ctx, &fc, &q, &in, input, &filter, weights, &bias_dims,
                                      bias, &out, output) == ARM_CMSIS_NN_SUCCESS;
    }
    const cmsis_nn_per_channel_quant_params q = {(int32_t *)mult, (int32_t *)shift};
    return arm_fully_connected_per_channel_s8(&ctx, &fc, &q, &in, input, &filter, weights,
                                              &bias_dims, bias, &out, output) == ARM_CMSIS_NN_SUCCESS;
}

static int cmsis_conv(const int8_t *input, const int8_t *weights, const int32_t *bias,
                      int8_t *output, const int32_t *mult, const int32_t *shift, const npu_window *g,
                      int32_t input_offset, int32_t output_offset, int32_t act_min,
                      int32_t act_max, int depthwise) {
    cmsis_nn_context ctx;
    const cmsis_nn_per_channel_quant_params q = {(int32_t *)mult, (int32_t *)shift};
    const cmsis_nn_dims in = dims(g->batches, g->in_h, g->in_w, g->in_c),
                        bias_dims = dims(1, 1, 1, g->out_c),
                        out = dims(g->batches, g->out_h, g->out_w, g->out_c);
    if (bias == NULL) {
        return 0;
    }
    if (depthwise) {
        const cmsis_nn_dw_conv_params p = {input_offset, output_offset, g->depth_multiplier,
                                           {g->stride_w, g->stride_h}, {g->pad_w, g->pad_h},
                                           {g->dilation_w, g->dilation_h}, {act_min, act_max}};
        const cmsis_nn_dims filter = dims(1, g->k_h, g->k_w, g->out_c);
        return context(&ctx, arm_depthwise_conv_wrapper_s8_get_buffer_size(&p, &in, &filter, &out)) &&
               arm_depthwise_conv_wrapper_s8(&ctx, &p, &q, &in, input, &filter, weights, &bias_dims,
                                             bias, &out, output) == ARM_CMSIS_NN_SUCCESS;
    } else {
        const cmsis_nn_conv_params p = {input_offset, output_offset, {g->stride_w, g->stride_h},
                                        {g->pad_w, g->pad_h}, {g->dilation_w, g->dilation_h},
                                        {act_min, act_max}};
        const cmsis_nn_dims filter = dims(g->out_c, g->k_h, g->k_w, g->in_c);
        return context(&ctx, arm_convolve_wrapper_s8_get_buffer_size(&p, &in, &filter, &out)) &&
               arm_convolve_wrapper_s8(&ctx, &p, &q, &in, input, &filter, weights, &bias_dims, bias,
                                       &out, output) == ARM_CMSIS_NN_SUCCESS;
    }
}

static int cmsis_pool(const int8_t *input, int8_t *output, const npu_window *g, int32_t act_min,
                      int32_t act_max, int average) {
    cmsis_nn_context ctx;
    const cmsis_nn_pool_params p = {{g->stride_w, g->stride_h}, {g->pad_w, g->pad_h},
                                    {act_min, act_max}};
    const cmsis_nn_dims in = dims(g->batches, g->in_h, g->in_w, g->in_c),
                        filter = dims(1, g->k_h, g->k_w, 1),
                        out = dims(g->batches, g->out_h, g->out_w, g->out_c);
    if (average) {
        return context(&ctx, arm_avgpool_s8_get_buffer_size(g->out_w, g->in_c)) &&
               arm_avgpool_s8(&ctx, &p, &in, input, &filter, &out, output) == ARM_CMSIS_NN_SUCCESS;
    }
    return context(&ctx, 0) &&
           arm_max_pool_s8(&ctx, &p, &in, input, &filter, &out, output) == ARM_CMSIS_NN_SUCCESS;
}

/* Both inputs whole and in the output's order (no broadcasting): one block of that size. */
static int32_t dense_block(const npu_arith *p) {
    int32_t stride = 1;
    for (int k = 3; k >= 0; --k) {
        if (p->dims[k] > 1 && (p->strides1[k] != stride || p->strides2[k] != stride)) {
            return 0;
        }
        stride *= p->dims[k];
    }
    return stride;
}

static int cmsis_add(const int8_t *input1, const int8_t *input2, int8_t *output,
                     const npu_arith *p) {
    const int32_t n = dense_block(p);
    return n > 0 &&
           arm_elementwise_add_s8(input1, input2, p->input1_offset, p->input1_multiplier,
                                  p->input1_shift, p->input2_offset, p->input2_multiplier,
                                  p->input2_shift, p->left_shift, output, p->output_offset,
                                  p->output_multiplier, p->output_shift, p->act_min, p->act_max,
                                  n) == ARM_CMSIS_NN_SUCCESS;
}
#endif

void npu_fully_connected_any(const int8_t *input, const int8_t *weights, const int32_t *bias,
                             int8_t *output, const int32_t *mult, const int32_t *shift,
                             int per_channel, int32_t batches, int32_t in_depth,
                             int32_t out_depth, int32_t input_offset, int32_t output_offset,
                             int32_t act_min, int32_t act_max) {
#ifdef NPU_CMSIS_NN
    if (cmsis_fully_connected(input, weights, bias, output, mult, shift, per_channel, batches,
                              in_depth, out_depth, input_offset, output_offset, act_min,
                              act_max)) {
        return;
    }
#endif
    npu_fully_connected(input, weights, bias, output, mult, shift, per_channel, batches,
                        in_depth, out_depth, input_offset, output_offset, act_min, act_max, NULL);
}

void npu_conv2d_any(const int8_t *input, const int8_t *weights, const int32_t *bias,
                    int8_t *output, const int32_t *mult, const int32_t *shift,
                    const npu_window *g, int32_t input_offset, int32_t output_offset,
                    int32_t act_min, int32_t act_max) {
#ifdef NPU_CMSIS_NN
    if (cmsis_conv(input, weights, bias, output, mult, shift, g, input_offset, output_offset,
                   act_min, act_max, 0)) {
        return;
    }
#endif
    npu_conv2d_s8(input, weights, bias, output, mult, shift, g, input_offset, output_offset,
                  act_min, act_max, NULL);
}

void npu_depthwise_conv2d_any(const int8_t *input, const int8_t *weights, const int32_t *bias,
                              int8_t *output, const int32_t *mult, const int32_t *shift,
                              const npu_window *g, int32_t input_offset, int32_t output_offset,
                              int32_t act_min, int32_t act_max) {
#ifdef NPU_CMSIS_NN
    if (cmsis_conv(input, weights, bias, output, mult, shift, g, input_offset, output_offset,
                   act_min, act_max, 1)) {
        return;
    }
#endif
    npu_depthwise_conv2d_s8(input, weights, bias, output, mult, shift, g, input_offset,
                            output_offset, act_min, act_max, NULL);
}

void npu_average_pool2d_any(const int8_t *input, int8_t *output, const npu_window *g,
                            int32_t act_min, int32_t act_max) {
#ifdef NPU_CMSIS_NN
    if (cmsis_pool(input, output, g, act_min, act_max, 1)) {
        return;
    }
#endif
    npu_average_pool2d_s8(input, output, g, act_min, act_max);
}

void npu_max_pool2d_any(const int8_t *input, int8_t *output, const npu_window *g,
                        int32_t act_min, int32_t act_max) {
#ifdef NPU_CMSIS_NN
    if (cmsis_pool(input, output, g, act_min, act_max, 0)) {
        return;
    }
#endif
    npu_max_pool2d_s8(input, output, g, act_min, act_max);
}

void npu_add_s8_any(const int8_t *input1, const int8_t *input2, int8_t *output,
                    const npu_arith *p) {
#ifdef NPU_CMSIS_NN
    if (cmsis_add(input1, input2, output, p)) {
        return;
    }
#endif
    npu_add_s8(input1, input2, output, p);
}
