"""Reference runtimes for the same .tflite: TFLite Micro (the arithmetic oracle) and LiteRT.

LiteRT is `ai_edge_litert`'s Interpreter; where that cannot be imported (not installed,
or built for another numpy) `tflite_runtime`'s is used: the same API.
"""
import re
import subprocess
import sys

import numpy as np

from . import tflite
from .errors import NpuError


def _interpreter_class():
    """LiteRT's Interpreter, or tflite_runtime's where that is the one that imports."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as e:
            raise NpuError("no TFLite runtime: pip install ai-edge-litert (or tflite-runtime)") from e
    return Interpreter


def _builtin_kwargs(cls):
    """Interpreter arguments selecting the builtin kernels without default delegates (no
    XNNPACK), from the module that defines `cls`; {} where that runtime has no such choice."""
    resolver = getattr(sys.modules.get(cls.__module__), "OpResolverType", None)
    member = getattr(resolver, "BUILTIN_WITHOUT_DEFAULT_DELEGATES", None)
    return {} if member is None else dict(experimental_op_resolver_type=member)


def litert_interpreter(model_bytes, num_threads=1, builtin=False):
    """An allocated LiteRT interpreter; `builtin` keeps to the builtin kernels (no XNNPACK)."""
    cls = _interpreter_class()
    kwargs = _builtin_kwargs(cls) if builtin else {}
    interpreter = cls(model_content=bytes(model_bytes), num_threads=num_threads, **kwargs)
    interpreter.allocate_tensors()
    return interpreter


def run_litert(model_bytes, inputs, num_threads=1, interpreter=None, builtin=False):
    """Run one inference with LiteRT; returns the list of outputs. Pass `interpreter`
    (from litert_interpreter) to reuse one across samples; `builtin` as litert_interpreter."""
    interpreter = interpreter or litert_interpreter(model_bytes, num_threads, builtin)
    for detail, x in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], np.asarray(x, dtype=detail["dtype"]).reshape(detail["shape"]))
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]


def tflm_interpreter(model_bytes, arena_size=None):
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as e:
        raise NpuError("TFLite Micro is not installed: pip install 'npu-sdk[validate]' "
                       "(npu validate's oracle)") from e
    return runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=arena_size)


def tflm_arena(model_bytes):
    """TFLite Micro's arena for a model, as its recording allocator reports it:
    dict(total=arena_used_bytes(), head=the planned activations, tail=persistent data).
    The allocator prints from C++, so it runs in a child process whose output is read."""
    code = ("import sys; from npu_sdk import reference; "
            "reference.tflm_interpreter(sys.stdin.buffer.read()).print_allocations()")
    proc = subprocess.run([sys.executable, "-c", code], input=bytes(model_bytes),
                          capture_output=True)
    out = (proc.stdout + proc.stderr).decode(errors="replace")
    found = dict(re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", out))
    if proc.returncode != 0 or len(found) != 3:
        raise NpuError("TFLite Micro could not plan the model: %s"
                       % ((out.strip().splitlines() or ["exit %d" % proc.returncode])[-1]))
    return {k: int(v) for k, v in found.items()}


def run_tflm(model_bytes, inputs, interpreter=None):
    """Run one inference on TFLite Micro's reference kernels; returns the list of outputs."""
    interpreter = interpreter or tflm_interpreter(model_bytes)
    for i, x in enumerate(inputs):
        detail = interpreter.get_input_details(i)
        interpreter.set_input(np.asarray(x, dtype=detail["dtype"]).reshape(detail["shape"]), i)
    interpreter.invoke()
    # TFLM aborts on an index past the end: count the outputs in the flatbuffer (cheap)
    n_outputs = tflite.schema.Model.GetRootAs(bytes(model_bytes), 0).Subgraphs(0).OutputsLength()
    return [interpreter.get_output(i).copy() for i in range(n_outputs)]


def litert_all_tensors(model_bytes, samples, tensors):
    """Run LiteRT once per sample, keeping intermediates; yields {tensor index: array} per sample.

    `samples` is an iterable of input lists (one array per model input);
    `tensors` the tensor indices to read back. Default delegates (XNNPACK) are
    off so every intermediate tensor is computed by a builtin kernel and kept.
    """
    cls = _interpreter_class()
    interpreter = cls(model_content=bytes(model_bytes), num_threads=1,
                      experimental_preserve_all_tensors=True, **_builtin_kwargs(cls))
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    for inputs in samples:
        for detail, x in zip(details, inputs):
            interpreter.set_tensor(detail["index"],
                                   np.asarray(x, dtype=detail["dtype"]).reshape(detail["shape"]))
        interpreter.invoke()
        yield {i: interpreter.get_tensor(i).copy() for i in tensors}
