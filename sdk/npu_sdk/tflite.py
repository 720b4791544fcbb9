"""Read a .tflite flatbuffer into a Graph (schema shipped by ai-edge-litert)."""
import os
import warnings

import numpy as np

from .errors import ModelError, ModelWarning
from .graph import Graph, Op, Tensor

try:
    from ai_edge_litert import schema_py_generated as schema
except ImportError as e:  # pragma: no cover - ai-edge-litert is a hard dependency
    raise ImportError("npu_sdk needs ai-edge-litert for the TFLite schema: pip install ai-edge-litert") from e

MAX_TENSOR_BYTES = 2 ** 31 - 1  # the blob's u32 sizes and int32 kernel arithmetic; far above any MCU
_DTYPES = {
    schema.TensorType.FLOAT32: np.float32,
    schema.TensorType.INT32: np.int32,
    schema.TensorType.INT8: np.int8,
    schema.TensorType.UINT8: np.uint8,
    schema.TensorType.INT16: np.int16,
    schema.TensorType.INT64: np.int64,
    schema.TensorType.BOOL: np.bool_,
}


def _enum_names(enum_class):
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_")}


_OP_NAMES = _enum_names(schema.BuiltinOperator)
_TYPE_NAMES = _enum_names(schema.TensorType)
#: builtin option attribute -> Op.options key: every option the SDK reads, and all that
#: tflite_writer.py writes back. Enums are kept as names (ENUM_OPTIONS), the rest as they are.
OPTION_KEYS = dict((("fusedActivationFunction", "activation"), ("padding", "padding"),
                    ("beta", "beta"), ("keepNumDims", "keep_num_dims"),
                  ("weightsFormat", "weights_format"), ("strideH", "stride_h"),
                  ("strideW", "stride_w"), ("dilationHFactor", "dilation_h"),
                  ("dilationWFactor", "dilation_w"), ("depthMultiplier", "depth_multiplier"),
                  ("filterHeight", "filter_h"), ("filterWidth", "filter_w"),
                  ("axis", "axis"), ("keepDims", "keep_dims"), ("alpha", "alpha"),
                  ("potScaleInt16", "pot_scale_int16"),
                  # STRIDED_SLICE and GATHER, read by the constant folding in rewrite.py
                  ("beginMask", "begin_mask"), ("endMask", "end_mask"),
                  ("ellipsisMask", "ellipsis_mask"), ("newAxisMask", "new_axis_mask"),
                  ("shrinkAxisMask", "shrink_axis_mask"), ("offset", "offset"),
                  ("batchDims", "batch_dims"),
                  # PACK and SHAPE, so that the writer does not write the schema's defaults
                  ("valuesCount", "values_count"), ("outType", "out_type"),
                  ("newShape", "new_shape")))
ENUM_OPTIONS = {"fusedActivationFunction": schema.ActivationFunctionType, "padding": schema.Padding}
_ENUM_NAMES = {attr: _enum_names(enum) for attr, enum in ENUM_OPTIONS.items()}


def load(path):
    """Read a .tflite file; raises ModelError naming the file and what is wrong."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ModelError("cannot read model %s: %s" % (path, e.strerror or e)) from e
    return parse(data, source=os.fspath(path))


def parse(data, source="model"):
    """Parse .tflite bytes into a Graph."""
    data = bytes(data)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(
            "%s is not a TFLite model (no 'TFL3' file identifier); "
            "pass a .tflite file written by the TFLite converter" % source)
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as e:  # the generated reader raises anything on damaged input
        raise ModelError("%s is a damaged .tflite flatbuffer (%s: %s); re-export the model"
                         % (source, type(e).__name__, e)) from e
    if not model.subgraphs:
        raise ModelError("%s has no subgraph" % source)
    if len(model.subgraphs) > 1:
        raise ModelError("%s has %d subgraphs; only single-subgraph models (no control flow) "
                         "are supported" % (source, len(model.subgraphs)))
    try:
        return _graph(model, data, source)
    except (IndexError, TypeError, ValueError) as e:
        raise ModelError("%s is inconsistent (%s); re-export the model" % (source, e)) from e


def _buffer_bytes(model, index, data):
    buf = model.buffers[index] if model.buffers and index < len(model.buffers) else None
    if buf is None:
        return None
    if buf.offset and buf.offset > 1:  # large models keep data after the flatbuffer
        return data[buf.offset:buf.offset + buf.size]
    if buf.data is None or len(buf.data) == 0:
        return None
    return np.asarray(buf.data, dtype=np.uint8).tobytes()


def _tensor(model, t, data, source):
    if t.type not in _DTYPES:
        raise ModelError("%s: tensor %r has type %s, which is not supported"
                         % (source, _str(t.name), _TYPE_NAMES.get(t.type, t.type)))
    dtype = np.dtype(_DTYPES[t.type])
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
    if any(d < 0 for d in shape):
        raise ModelError("%s: tensor %r has shape %s; dynamic shapes are not supported, export "
                         "the model with fixed input shapes" % (source, _str(t.name), shape))
    count = 1
    for d in shape:
        count *= d  # Python ints: no overflow
    if count * dtype.itemsize > MAX_TENSOR_BYTES:
        raise ModelError("%s: tensor %r of shape %s needs %d bytes, more than %d"
                         % (source, _str(t.name), shape, count * dtype.itemsize, MAX_TENSOR_BYTES))
    raw = _buffer_bytes(model, t.buffer, data)
    value = None
    if raw is not None:
        if len(raw) != count * dtype.itemsize:
            raise ModelError("%s: constant tensor %r holds %d bytes, its shape %s needs %d"
                             % (source, _str(t.name), len(raw), shape, count * dtype.itemsize))
        value = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    q = t.quantization
    scales = zps = None
    qdim = 0
    if q is not None and q.scale is not None and len(q.scale):
        scales = np.asarray(q.scale, dtype=np.float32)
        zps = np.asarray(q.zeroPoint if q.zeroPoint is not None and len(q.zeroPoint)
                         else [0] * len(scales), dtype=np.int64)
        qdim = _check_quantization(t, shape, dtype, scales, zps, int(q.quantizedDimension), source)
    return Tensor(_str(t.name), shape, dtype, scales, zps, qdim, value)


def _check_quantization(t, shape, dtype, scales, zps, qdim, source):
    what = "%s: tensor %r" % (source, _str(t.name))
    if len(zps) != len(scales):
        raise ModelError("%s has %d scales but %d zero points" % (what, len(scales), len(zps)))
    if not np.all(np.isfinite(scales)) or np.any(scales < 0):
        raise ModelError("%s has a negative or non-finite quantization scale" % what)
    lo, hi = (np.iinfo(dtype).min, np.iinfo(dtype).max) if dtype.kind in "iu" else (-2**31, 2**31 - 1)
    if np.any(zps < lo) or np.any(zps > hi):
        raise ModelError("%s has a zero point outside %s" % (what, dtype))
    if len(scales) > 1 and len(shape) == 1 and qdim != 0 and shape[0] == len(scales):
        # Converters leave a conv's quantized dimension (3) on its 1-D bias (tflite-micro's
        # person_detect); TFLite Micro does not check a bias's axis, LiteRT refuses the file.
        warnings.warn("%s has %d per-channel scales on axis %d of its 1-D shape %s; read on "
                      "axis 0, as TFLite Micro does" % (what, len(scales), qdim, shape),
                      ModelWarning, stacklevel=2)
        return 0
    if len(scales) > 1 and not (0 <= qdim < len(shape) and shape[qdim] == len(scales)):
        raise ModelError("%s has %d per-channel scales on axis %d of shape %s"
                         % (what, len(scales), qdim, shape))
    return qdim


def _options(op):
    o = op.builtinOptions
    if o is None:
        return {}
    opts = {}
    for attr, key in OPTION_KEYS.items():
        if not hasattr(o, attr):
            continue
        value = getattr(o, attr)
        if attr in ENUM_OPTIONS:
            value = _ENUM_NAMES[attr].get(value, str(value))
        elif attr == "newShape":
            value = list(value) if value is not None else None
        opts[key] = value
    return opts


def _indices(values, n, what, optional=False):
    """Tensor indices as ints, each in range (-1 allowed where the input is `optional`)."""
    out = [int(x) for x in (values if values is not None else ())]
    for x in out:
        if not (-1 if optional else 0) <= x < n:
            raise ModelError("%s refers to tensor %d of %d" % (what, x, n))
    return out


def _graph(model, data, source):
    sg = model.subgraphs[0]
    tensors = [_tensor(model, t, data, source) for t in (sg.tensors or [])]
    n = len(tensors)
    ops = []
    for i, op in enumerate(sg.operators or []):
        if not 0 <= op.opcodeIndex < len(model.operatorCodes or []):
            raise ModelError("%s: op #%d has opcode index %d of %d"
                             % (source, i, op.opcodeIndex, len(model.operatorCodes or [])))
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = _OP_NAMES.get(builtin, "BUILTIN_%d" % builtin)
        if name == "CUSTOM":
            name = "CUSTOM(%s)" % _str(code.customCode)
        what = "%s: op #%d %s" % (source, i, name)
        outputs = _indices(op.outputs, n, what)
        if not outputs:
            raise ModelError("%s has no output" % what)
        ops.append(Op(name, _indices(op.inputs, n, what, optional=True), outputs, _options(op), i))
    return Graph(tensors, ops, _indices(sg.inputs, n, "%s: the model input" % source),
                 _indices(sg.outputs, n, "%s: the model output" % source),
                 name=os.path.splitext(os.path.basename(source))[0])


def _str(value):
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
