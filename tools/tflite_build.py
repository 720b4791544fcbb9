"""Build single-op int8 .tflite models in memory and run them on the TFLM oracle.

Test utility only: the models are the smallest flatbuffers TFLite Micro accepts
for one op (FULLY_CONNECTED, SOFTMAX, QUANTIZE, DEQUANTIZE, CONV_2D,
DEPTHWISE_CONV_2D, the pools, ADD, MUL, the pointwise activations, MEAN, PAD,
CONCATENATION, TRANSPOSE), so a conformance test can compare a
kernel with the oracle on exactly the parameters it chose.
"""

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as tfl

_ACTIVATIONS = {
    "NONE": tfl.ActivationFunctionType.NONE,
    "RELU": tfl.ActivationFunctionType.RELU,
    "RELU6": tfl.ActivationFunctionType.RELU6,
    "RELU_N1_TO_1": tfl.ActivationFunctionType.RELU_N1_TO_1,
}

_TYPES = {
    np.dtype(np.int8): tfl.TensorType.INT8,
    np.dtype(np.int16): tfl.TensorType.INT16,
    np.dtype(np.int32): tfl.TensorType.INT32,
    np.dtype(np.int64): tfl.TensorType.INT64,
    np.dtype(np.float32): tfl.TensorType.FLOAT32,
}


class _Model:
    """Collects tensors and buffers of a one-subgraph, one-op model."""

    def __init__(self):
        self.tensors = []
        self.buffers = [tfl.BufferT()]  # buffer 0: the empty sentinel

    def tensor(self, name, shape, dtype, scales=None, zero_points=None, data=None, axis=0):
        t = tfl.TensorT()
        t.name = name
        t.shape = np.asarray(shape, dtype=np.int32)
        t.type = _TYPES[np.dtype(dtype)]
        if scales is not None:
            q = tfl.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(scales)]
            zps = np.zeros(len(q.scale), np.int64) if zero_points is None else zero_points
            q.zeroPoint = [int(z) for z in np.atleast_1d(zps)]
            q.quantizedDimension = axis
            t.quantization = q
        if data is not None:
            buf = tfl.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data, dtype=dtype).tobytes(), np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def build(self, opcode, inputs, outputs, options_type=0, options=None, graph_inputs=None):
        code = tfl.OperatorCodeT()
        code.builtinCode = opcode
        code.deprecatedBuiltinCode = min(opcode, 127)  # the int8 legacy field
        code.version = 1
        op = tfl.OperatorT()
        op.opcodeIndex = 0
        op.inputs = np.asarray(inputs, dtype=np.int32)
        op.outputs = np.asarray(outputs, dtype=np.int32)
        op.builtinOptionsType = options_type
        op.builtinOptions = options
        sub = tfl.SubGraphT()
        sub.tensors = self.tensors
        if graph_inputs is None:
            graph_inputs = [inputs[0]]
        sub.inputs = np.asarray(graph_inputs, dtype=np.int32)
        sub.outputs = np.asarray(outputs, dtype=np.int32)
        sub.operators = [op]
        sub.name = "main"
        model = tfl.ModelT()
        model.version = 3
        model.description = "npu-sdk conformance single-op model"
        model.operatorCodes = [code]
        model.subgraphs = [sub]
        model.buffers = self.buffers
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def fully_connected_model(in_depth, out_depth, batches, input_q, weights, weight_scales,
                          bias, output_q, activation="NONE", int16=False):
    """FULLY_CONNECTED: int8 input [batches, in_depth], int8 weights [out, in]
    (per-tensor if one scale, else per-channel on axis 0), optional int32 bias. With
    `int16`, 16x8 as TensorFlow's converter writes it: int16 input and output (zero points
    0: pass them in input_q/output_q), int64 bias."""
    act, bias_t = (np.int16, np.int64) if int16 else (np.int8, np.int32)
    weights = np.asarray(weights, dtype=np.int8).reshape(out_depth, in_depth)
    w_scales = np.atleast_1d(np.asarray(weight_scales, dtype=np.float32))
    m = _Model()
    x = m.tensor("input", [batches, in_depth], act, input_q[0], input_q[1])
    w = m.tensor("weights", [out_depth, in_depth], np.int8, w_scales,
                 np.zeros(len(w_scales), np.int64), data=weights, axis=0)
    b = -1
    if bias is not None:
        # Bias scale = input scale * weight scale, which TFLM checks to 2%.
        b_scales = np.float32(input_q[0]) * w_scales
        b = m.tensor("bias", [out_depth], bias_t, b_scales, np.zeros(len(b_scales), np.int64),
                     data=np.asarray(bias, dtype=bias_t), axis=0)
    y = m.tensor("output", [batches, out_depth], act, output_q[0], output_q[1])
    opts = tfl.FullyConnectedOptionsT()
    opts.fusedActivationFunction = _ACTIVATIONS[activation]
    return m.build(tfl.BuiltinOperator.FULLY_CONNECTED, [x, w, b], [y],
                   tfl.BuiltinOptions.FullyConnectedOptions, opts)


def softmax_model(shape, input_q, beta=1.0, dtype=np.int8):
    """SOFTMAX on the last axis: int8 in, int8 out with scale 1/256, zero point -128 (int16:
    out 1/32768, 0)."""
    m = _Model()
    x = m.tensor("input", shape, dtype, input_q[0], input_q[1])
    out_q = (1.0 / 32768.0, 0) if np.dtype(dtype) == np.int16 else (1.0 / 256.0, -128)
    y = m.tensor("output", shape, dtype, out_q[0], out_q[1])
    opts = tfl.SoftmaxOptionsT()
    opts.beta = beta
    return m.build(tfl.BuiltinOperator.SOFTMAX, [x], [y], tfl.BuiltinOptions.SoftmaxOptions, opts)


def quantize_model(shape, output_q, dtype=np.int8):
    """QUANTIZE float32 -> int8 (or `dtype`)."""
    m = _Model()
    x = m.tensor("input", shape, np.float32)
    y = m.tensor("output", shape, dtype, output_q[0], output_q[1])
    return m.build(tfl.BuiltinOperator.QUANTIZE, [x], [y], tfl.BuiltinOptions.QuantizeOptions,
                   tfl.QuantizeOptionsT())


def requantize_model(shape, input_q, output_q, in_dtype, out_dtype):
    """QUANTIZE between integer types (int8 <-> int16): a requantization."""
    m = _Model()
    x = m.tensor("input", shape, in_dtype, input_q[0], input_q[1])
    y = m.tensor("output", shape, out_dtype, output_q[0], output_q[1])
    return m.build(tfl.BuiltinOperator.QUANTIZE, [x], [y], tfl.BuiltinOptions.QuantizeOptions,
                   tfl.QuantizeOptionsT())


def dequantize_model(shape, input_q, dtype=np.int8):
    """DEQUANTIZE int8 (or `dtype`) -> float32."""
    m = _Model()
    x = m.tensor("input", shape, dtype, input_q[0], input_q[1])
    y = m.tensor("output", shape, np.float32)
    return m.build(tfl.BuiltinOperator.DEQUANTIZE, [x], [y],
                   tfl.BuiltinOptions.DequantizeOptions, tfl.DequantizeOptionsT())


_PADDINGS = {"SAME": tfl.Padding.SAME, "VALID": tfl.Padding.VALID}


def conv2d_model(input_shape, input_q, weights, weight_scales, bias, output_q, stride=(1, 1),
                 dilation=(1, 1), padding="SAME", activation="NONE", depthwise=False,
                 bias_axis=0, int16=False):
    """CONV_2D (weights OHWI, per-channel on axis 0) or DEPTHWISE_CONV_2D (weights
    [1, k_h, k_w, out_c], per-channel on axis 3); int8 NHWC input, optional int32 bias
    (`bias_axis` 3: the quantized dimension converters leave on a 1-D bias; `int16`: 16x8,
    int16 input and output, int64 bias).
    The output shape is computed from the window arithmetic."""
    from npu_sdk import lower

    act, bias_t = (np.int16, np.int64) if int16 else (np.int8, np.int32)
    weights = np.asarray(weights, dtype=np.int8)
    n, in_h, in_w, in_c = input_shape
    if depthwise:
        _, k_h, k_w, out_c = weights.shape
    else:
        out_c, k_h, k_w, _ = weights.shape
    out_h = lower.conv_output_size(padding, in_h, k_h, stride[0], dilation[0])
    out_w = lower.conv_output_size(padding, in_w, k_w, stride[1], dilation[1])
    w_scales = np.atleast_1d(np.asarray(weight_scales, dtype=np.float32))
    axis = 3 if depthwise else 0
    m = _Model()
    x = m.tensor("input", input_shape, act, input_q[0], input_q[1])
    w = m.tensor("weights", weights.shape, np.int8, w_scales, np.zeros(len(w_scales), np.int64),
                 data=weights, axis=axis)
    b = -1
    if bias is not None:
        b_scales = np.float32(input_q[0]) * w_scales
        b = m.tensor("bias", [out_c], bias_t, b_scales, np.zeros(len(b_scales), np.int64),
                     data=np.asarray(bias, dtype=bias_t), axis=bias_axis)
    y = m.tensor("output", [n, out_h, out_w, out_c], act, output_q[0], output_q[1])
    opts = tfl.DepthwiseConv2DOptionsT() if depthwise else tfl.Conv2DOptionsT()
    opts.padding = _PADDINGS[padding]
    opts.strideH, opts.strideW = stride
    opts.dilationHFactor, opts.dilationWFactor = dilation
    opts.fusedActivationFunction = _ACTIVATIONS[activation]
    if depthwise:
        opts.depthMultiplier = out_c // in_c
        return m.build(tfl.BuiltinOperator.DEPTHWISE_CONV_2D, [x, w, b], [y],
                       tfl.BuiltinOptions.DepthwiseConv2DOptions, opts)
    return m.build(tfl.BuiltinOperator.CONV_2D, [x, w, b], [y], tfl.BuiltinOptions.Conv2DOptions,
                   opts)


def pool2d_model(kind, input_shape, q, filter_hw, stride=(1, 1), padding="SAME",
                 activation="NONE", dtype=np.int8):
    """AVERAGE_POOL_2D or MAX_POOL_2D, int8 (or `dtype`) NHWC, input and output
    quantization `q`."""
    from npu_sdk import lower

    n, in_h, in_w, c = input_shape
    out_h = lower.conv_output_size(padding, in_h, filter_hw[0], stride[0])
    out_w = lower.conv_output_size(padding, in_w, filter_hw[1], stride[1])
    m = _Model()
    x = m.tensor("input", input_shape, dtype, q[0], q[1])
    y = m.tensor("output", [n, out_h, out_w, c], dtype, q[0], q[1])
    opts = tfl.Pool2DOptionsT()
    opts.padding = _PADDINGS[padding]
    opts.strideH, opts.strideW = stride
    opts.filterHeight, opts.filterWidth = filter_hw
    opts.fusedActivationFunction = _ACTIVATIONS[activation]
    return m.build(getattr(tfl.BuiltinOperator, kind), [x], [y], tfl.BuiltinOptions.Pool2DOptions,
                   opts)


def elementwise_model(kind, shape1, q1, shape2, q2, output_q, activation="NONE", const2=None,
                      dtype=np.int8):
    """ADD or MUL of two int8 (or `dtype`) tensors broadcast to their common shape. With
    `const2` the second operand is a constant and the model has one input; else two."""
    out_shape = list(np.broadcast_shapes(tuple(shape1), tuple(shape2)))
    m = _Model()
    a = m.tensor("input1", shape1, dtype, q1[0], q1[1])
    b = m.tensor("input2", shape2, dtype, q2[0], q2[1], data=const2)
    y = m.tensor("output", out_shape, dtype, output_q[0], output_q[1])
    if kind == "ADD":
        opts, otype = tfl.AddOptionsT(), tfl.BuiltinOptions.AddOptions
    else:
        opts, otype = tfl.MulOptionsT(), tfl.BuiltinOptions.MulOptions
    opts.fusedActivationFunction = _ACTIVATIONS[activation]
    return m.build(getattr(tfl.BuiltinOperator, kind), [a, b], [y], otype, opts,
                   graph_inputs=[a] if const2 is not None else [a, b])


_UNARY_OPTIONS = {
    "LEAKY_RELU": ("LeakyReluOptions", "LeakyReluOptionsT"),
    "HARD_SWISH": ("HardSwishOptions", "HardSwishOptionsT"),
    "QUANTIZE": ("QuantizeOptions", "QuantizeOptionsT"),
}


def unary_model(kind, shape, input_q, output_q, alpha=None, dtype=np.int8):
    """An int8 (or `dtype`) pointwise op: RELU, RELU6, LEAKY_RELU (alpha), HARD_SWISH,
    LOGISTIC, TANH or QUANTIZE (requantization)."""
    m = _Model()
    x = m.tensor("input", shape, dtype, input_q[0], input_q[1])
    y = m.tensor("output", shape, dtype, output_q[0], output_q[1])
    otype, opts = 0, None
    if kind in _UNARY_OPTIONS:
        name, cls = _UNARY_OPTIONS[kind]
        otype, opts = getattr(tfl.BuiltinOptions, name), getattr(tfl, cls)()
        if alpha is not None:
            opts.alpha = alpha
    return m.build(getattr(tfl.BuiltinOperator, kind), [x], [y], otype, opts)


def mean_model(input_shape, input_q, output_q, axes=(1, 2), keep_dims=True, dtype=np.int8):
    """MEAN of an int8 (or `dtype`) tensor over constant `axes`."""
    out_shape = [1 if i in axes else d for i, d in enumerate(input_shape)
                 if keep_dims or i not in axes]
    m = _Model()
    x = m.tensor("input", input_shape, dtype, input_q[0], input_q[1])
    a = m.tensor("axis", [len(axes)], np.int32, data=np.asarray(axes, np.int32))
    y = m.tensor("output", out_shape, dtype, output_q[0], output_q[1])
    opts = tfl.ReducerOptionsT()
    opts.keepDims = keep_dims
    return m.build(tfl.BuiltinOperator.MEAN, [x, a], [y], tfl.BuiltinOptions.ReducerOptions,
                   opts)


def pad_model(input_shape, q, paddings, constant=None, dtype=np.int8):
    """PAD (or PADV2 with an int8 `constant` pad value) of an int8 (or `dtype`) tensor;
    `paddings` is [[before, after], ...] per dimension."""
    paddings = np.asarray(paddings, np.int32).reshape(len(input_shape), 2)
    out_shape = [d + int(p.sum()) for d, p in zip(input_shape, paddings)]
    m = _Model()
    x = m.tensor("input", input_shape, dtype, q[0], q[1])
    p = m.tensor("paddings", list(paddings.shape), np.int32, data=paddings)
    inputs = [x, p]
    if constant is not None:
        inputs.append(m.tensor("constant", [], np.int8, q[0], q[1],
                               data=np.asarray(constant, np.int8)))
    y = m.tensor("output", out_shape, dtype, q[0], q[1])
    if constant is None:
        return m.build(tfl.BuiltinOperator.PAD, inputs, [y], tfl.BuiltinOptions.PadOptions,
                       tfl.PadOptionsT())
    return m.build(tfl.BuiltinOperator.PADV2, inputs, [y], tfl.BuiltinOptions.PadV2Options,
                   tfl.PadV2OptionsT())


def concatenation_model(shapes, axis, q, qs=None, dtype=np.int8):
    """CONCATENATION of int8 (or `dtype`) tensors along `axis`; every input has quantization
    `q` unless `qs` gives one per input."""
    out_shape = list(shapes[0])
    out_shape[axis] = sum(s[axis] for s in shapes)
    m = _Model()
    qs = qs or [q] * len(shapes)
    xs = [m.tensor("input%d" % i, s, dtype, qi[0], qi[1]) for i, (s, qi) in
          enumerate(zip(shapes, qs))]
    y = m.tensor("output", out_shape, dtype, q[0], q[1])
    opts = tfl.ConcatenationOptionsT()
    opts.axis = axis
    return m.build(tfl.BuiltinOperator.CONCATENATION, xs, [y],
                   tfl.BuiltinOptions.ConcatenationOptions, opts, graph_inputs=xs)


def transpose_model(input_shape, q, perm, output_q=None, dtype=np.int8):
    """TRANSPOSE of an int8 (or `dtype`) tensor by the constant permutation `perm` (output
    quantization `q` unless `output_q` is given)."""
    output_q = output_q or q
    m = _Model()
    x = m.tensor("input", input_shape, dtype, q[0], q[1])
    p = m.tensor("perm", [len(perm)], np.int32, data=np.asarray(perm, np.int32))
    y = m.tensor("output", [input_shape[k % len(perm)] for k in perm], dtype, output_q[0],
                 output_q[1])
    return m.build(tfl.BuiltinOperator.TRANSPOSE, [x, p], [y],
                   tfl.BuiltinOptions.TransposeOptions, tfl.TransposeOptionsT())


def run_tflm(model_bytes, input_array, arena_size=1 << 20):
    """Run a one-output model on the TFLite Micro interpreter; `input_array` may be a
    list or tuple of arrays for a model with several inputs."""
    from tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_size)
    inputs = input_array if isinstance(input_array, (list, tuple)) else [input_array]
    for i, array in enumerate(inputs):
        interpreter.set_input(np.ascontiguousarray(array), i)
    interpreter.invoke()
    return np.array(interpreter.get_output(0), copy=True)
