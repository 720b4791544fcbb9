"""Write a Graph back to .tflite bytes (the inverse of tflite.parse).

Used to run a Graph on the reference runtimes: the float graph in LiteRT for
calibration, the quantized graph in LiteRT / TFLite Micro for accuracy and
bit-exactness checks. Tensor indices are preserved, so tensor i of the Graph
is tensor i of the written model. Only what the reader reads is written back:
tensors, quantization, constants, op kinds and their options.
"""
import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from . import ops, tflite
from .errors import ModelError

_TYPES = {
    np.dtype(np.float32): schema.TensorType.FLOAT32,
    np.dtype(np.int32): schema.TensorType.INT32,
    np.dtype(np.int8): schema.TensorType.INT8,
    np.dtype(np.uint8): schema.TensorType.UINT8,
    np.dtype(np.int16): schema.TensorType.INT16,
    np.dtype(np.int64): schema.TensorType.INT64,
    np.dtype(np.bool_): schema.TensorType.BOOL,
}

def _options(op):
    """The op's BuiltinOptions (registry: npu_sdk/ops.py) from the keys the reader reads; none
    when the reader read none (a RESHAPE without a table must not gain a null new_shape)."""
    info = ops.OPS.get(op.kind)
    if info is None or info.options is None or not op.options:
        return 0, None
    opts = getattr(schema, info.options + "T")()
    for attr, key in tflite.OPTION_KEYS.items():
        if not hasattr(opts, attr) or op.options.get(key) is None:
            continue
        value = op.options[key]
        if attr in tflite.ENUM_OPTIONS and isinstance(value, str):
            value = getattr(tflite.ENUM_OPTIONS[attr], value)
        elif isinstance(value, (list, tuple)):
            value = np.asarray(value, dtype=np.int32)
        setattr(opts, attr, value)
    return getattr(schema.BuiltinOptions, info.options), opts


def _builtin_code(kind):
    code = getattr(schema.BuiltinOperator, kind, None)
    if code is None:
        raise ModelError("tflite_writer: cannot write op kind %r (not a TFLite builtin)" % kind)
    return code


def write(graph, description="npu-sdk"):
    """Serialize `graph` as a .tflite flatbuffer; returns bytes."""
    buffers = [schema.BufferT()]  # buffer 0: the empty sentinel
    tensors = []
    for t in graph.tensors:
        tt = schema.TensorT()
        tt.name = t.name
        tt.shape = np.asarray(t.shape, dtype=np.int32)
        dtype = np.dtype(t.dtype)
        if dtype not in _TYPES:
            raise ModelError("tflite_writer: tensor %r has unsupported dtype %s" % (t.name, dtype))
        tt.type = _TYPES[dtype]
        if t.scales is not None:
            q = schema.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(t.scales)]
            q.zeroPoint = [int(z) for z in np.atleast_1d(t.zero_points)]
            q.quantizedDimension = int(t.quantized_dim)
            tt.quantization = q
        tt.buffer = 0
        if t.is_const:
            buf = schema.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(t.data, dtype=dtype).tobytes(), np.uint8)
            buffers.append(buf)
            tt.buffer = len(buffers) - 1
        tensors.append(tt)

    codes, code_index, operators = [], {}, []
    for op in graph.ops:
        builtin = _builtin_code(op.kind)
        if builtin not in code_index:
            code = schema.OperatorCodeT()
            code.builtinCode = builtin
            code.deprecatedBuiltinCode = min(builtin, 127)  # PLACEHOLDER_FOR_GREATER_OP_CODES
            code.version = 1
            code_index[builtin] = len(codes)
            codes.append(code)
        o = schema.OperatorT()
        o.opcodeIndex = code_index[builtin]
        o.inputs = np.asarray(op.inputs, dtype=np.int32)
        o.outputs = np.asarray(op.outputs, dtype=np.int32)
        o.builtinOptionsType, o.builtinOptions = _options(op)
        operators.append(o)

    sub = schema.SubGraphT()
    sub.tensors = tensors
    sub.inputs = np.asarray(graph.inputs, dtype=np.int32)
    sub.outputs = np.asarray(graph.outputs, dtype=np.int32)
    sub.operators = operators
    sub.name = "main"
    model = schema.ModelT()
    model.version = 3
    model.description = description
    model.operatorCodes = codes
    model.subgraphs = [sub]
    model.buffers = buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
