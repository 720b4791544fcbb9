"""Reference runtimes for the same .tflite: TFLite Micro (the arithmetic oracle) and LiteRT."""
import numpy as np

from . import tflite
from .errors import NpuError


def _interpreter_class():
    """LiteRT's Interpreter, or tflite_runtime's where that is the one installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as e:
            raise NpuError("no TFLite runtime: pip install ai-edge-litert") from e
    return Interpreter


def run_litert(model_bytes, inputs, num_threads=1):
    """Run one inference with LiteRT's builtin kernels; returns the list of outputs."""
    interpreter = _interpreter_class()(model_content=bytes(model_bytes), num_threads=num_threads)
    interpreter.allocate_tensors()
    for detail, x in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], np.asarray(x, dtype=detail["dtype"]).reshape(detail["shape"]))
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]


def tflm_interpreter(model_bytes, arena_size=None):
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as e:
        raise NpuError("TFLite Micro is not installed: pip install tflite-micro "
                       "(it is in npu-sdk[test])") from e
    return runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=arena_size)


def run_tflm(model_bytes, inputs, interpreter=None):
    """Run one inference on TFLite Micro's reference kernels; returns the list of outputs."""
    interpreter = interpreter or tflm_interpreter(model_bytes)
    for i, x in enumerate(inputs):
        detail = interpreter.get_input_details(i)
        interpreter.set_input(np.asarray(x, dtype=detail["dtype"]).reshape(detail["shape"]), i)
    interpreter.invoke()
    n_outputs = len(tflite.parse(model_bytes).outputs)  # TFLM aborts on an index past the end
    return [interpreter.get_output(i).copy() for i in range(n_outputs)]


def litert_all_tensors(model_bytes, samples, tensors):
    """Run LiteRT once per sample, keeping intermediates; yields {tensor index: array} per sample.

    `samples` is an iterable of input lists (one array per model input);
    `tensors` the tensor indices to read back. Default delegates (XNNPACK) are
    off so every intermediate tensor is computed by a builtin kernel and kept.
    """
    cls = _interpreter_class()
    kwargs = dict(model_content=bytes(model_bytes), num_threads=1, experimental_preserve_all_tensors=True)
    try:
        from ai_edge_litert.interpreter import OpResolverType
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    except ImportError:  # tflite_runtime: no resolver choice
        pass
    interpreter = cls(**kwargs)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    for inputs in samples:
        for detail, x in zip(details, inputs):
            interpreter.set_tensor(detail["index"],
                                   np.asarray(x, dtype=detail["dtype"]).reshape(detail["shape"]))
        interpreter.invoke()
        yield {i: interpreter.get_tensor(i).copy() for i in tensors}
