"""Build single-op int8 .tflite models in memory and run them on the TFLM oracle.

Test utility only: the models are the smallest flatbuffers TFLite Micro accepts
for one FULLY_CONNECTED, SOFTMAX, QUANTIZE or DEQUANTIZE op, so a conformance
test can compare a kernel with the oracle on exactly the parameters it chose.
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
    np.dtype(np.int32): tfl.TensorType.INT32,
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

    def build(self, opcode, inputs, outputs, options_type=0, options=None):
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
        sub.inputs = np.asarray([inputs[0]], dtype=np.int32)
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
                          bias, output_q, activation="NONE"):
    """FULLY_CONNECTED: int8 input [batches, in_depth], int8 weights [out, in]
    (per-tensor if one scale, else per-channel on axis 0), optional int32 bias."""
    weights = np.asarray(weights, dtype=np.int8).reshape(out_depth, in_depth)
    w_scales = np.atleast_1d(np.asarray(weight_scales, dtype=np.float32))
    m = _Model()
    x = m.tensor("input", [batches, in_depth], np.int8, input_q[0], input_q[1])
    w = m.tensor("weights", [out_depth, in_depth], np.int8, w_scales,
                 np.zeros(len(w_scales), np.int64), data=weights, axis=0)
    b = -1
    if bias is not None:
        # Bias scale = input scale * weight scale, which TFLM checks to 2%.
        b_scales = np.float32(input_q[0]) * w_scales
        b = m.tensor("bias", [out_depth], np.int32, b_scales, np.zeros(len(b_scales), np.int64),
                     data=np.asarray(bias, dtype=np.int32), axis=0)
    y = m.tensor("output", [batches, out_depth], np.int8, output_q[0], output_q[1])
    opts = tfl.FullyConnectedOptionsT()
    opts.fusedActivationFunction = _ACTIVATIONS[activation]
    return m.build(tfl.BuiltinOperator.FULLY_CONNECTED, [x, w, b], [y],
                   tfl.BuiltinOptions.FullyConnectedOptions, opts)


def softmax_model(shape, input_q, beta=1.0):
    """SOFTMAX on the last axis: int8 in, int8 out with scale 1/256, zero point -128."""
    m = _Model()
    x = m.tensor("input", shape, np.int8, input_q[0], input_q[1])
    y = m.tensor("output", shape, np.int8, 1.0 / 256.0, -128)
    opts = tfl.SoftmaxOptionsT()
    opts.beta = beta
    return m.build(tfl.BuiltinOperator.SOFTMAX, [x], [y], tfl.BuiltinOptions.SoftmaxOptions, opts)


def quantize_model(shape, output_q):
    """QUANTIZE float32 -> int8."""
    m = _Model()
    x = m.tensor("input", shape, np.float32)
    y = m.tensor("output", shape, np.int8, output_q[0], output_q[1])
    return m.build(tfl.BuiltinOperator.QUANTIZE, [x], [y], tfl.BuiltinOptions.QuantizeOptions,
                   tfl.QuantizeOptionsT())


def dequantize_model(shape, input_q):
    """DEQUANTIZE int8 -> float32."""
    m = _Model()
    x = m.tensor("input", shape, np.int8, input_q[0], input_q[1])
    y = m.tensor("output", shape, np.float32)
    return m.build(tfl.BuiltinOperator.DEQUANTIZE, [x], [y],
                   tfl.BuiltinOptions.DequantizeOptions, tfl.DequantizeOptionsT())


def run_tflm(model_bytes, input_array, arena_size=1 << 20):
    """Run a one-input, one-output model on the TFLite Micro interpreter."""
    from tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_size)
    interpreter.set_input(np.ascontiguousarray(input_array), 0)
    interpreter.invoke()
    return np.array(interpreter.get_output(0), copy=True)
