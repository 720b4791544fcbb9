"""The C kernels' SIMD twins (AVX2, chosen at run time) against their portable code.

The conformance suites run whichever path the CPU picks; here every kernel with a
twin runs the same arguments on both paths (npu_emulator._kernels.set_isa) and the
outputs must be byte-identical, over shapes chosen to hit the twins' edges: tails of
the channel and depth loops, odd filter sizes, padding, dilation, batches, weights
of -128, zero points at both ends, and extreme multipliers and shifts. Seeded.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

kernels = pytest.importorskip("npu_emulator._kernels")

needs_simd = pytest.mark.skipif(kernels.supported_isa() == "scalar",
                                reason="this CPU runs only the portable kernels")


@pytest.fixture
def isa():
    previous = kernels.isa()
    yield
    kernels.set_isa(previous)


def both(call, out):
    """Run call(out) on the portable path and on the best path; return both outputs."""
    results = []
    for name in ("scalar", kernels.supported_isa()):
        kernels.set_isa(name)
        out[...] = 0x55
        call(out)
        results.append(out.copy())
    return results


def requant(rng, n, wide=False):
    """Per-channel multipliers and shifts: TFLite-like, or anything the binding accepts."""
    if wide:
        mult = rng.integers(-2**31, 2**31, n, dtype=np.int64).astype(np.int32)
        shift = rng.integers(-31, 32, n).astype(np.int32)
    else:
        mult = rng.integers(2**30, 2**31, n, dtype=np.int64).astype(np.int32)
        shift = rng.integers(-14, 2, n).astype(np.int32)
    return mult, shift


def out_size(size, k, stride, dilation, pad):
    return (size + 2 * pad - ((k - 1) * dilation + 1)) // stride + 1


# (batches, in_h, in_w, in_c, out_c, k_h, k_w, stride, dilation, pad)
CONV_GEOMETRIES = [
    (1, 9, 10, 1, 64, 10, 4, (2, 2), (1, 1), (4, 1)),    # KWS-like first layer
    (1, 13, 11, 3, 8, 3, 3, (2, 2), (1, 1), (1, 1)),     # image stem, N == 8
    (2, 6, 7, 8, 16, 1, 1, (1, 1), (1, 1), (0, 0)),      # pointwise, even K
    (1, 5, 6, 7, 5, 1, 1, (1, 1), (1, 1), (0, 0)),       # pointwise, odd K and N
    (1, 7, 7, 16, 33, 3, 3, (1, 1), (1, 1), (1, 1)),     # N past a 16-channel block
    (1, 8, 9, 5, 24, 3, 2, (1, 2), (2, 1), (2, 0)),      # dilation, odd K
    (1, 3, 3, 64, 40, 3, 3, (1, 1), (1, 1), (1, 1)),     # few pixels, deep K
    (3, 4, 5, 2, 3, 5, 5, (1, 1), (1, 1), (2, 2)),       # window wider than the image
    (1, 6, 6, 48, 17, 1, 1, (2, 2), (1, 1), (0, 0)),     # strided 1x1
]


@needs_simd
@pytest.mark.parametrize("geometry", CONV_GEOMETRIES, ids=lambda g: "x".join(map(str, g[:7])))
@pytest.mark.parametrize("wide", [False, True], ids=["tflite_params", "any_params"])
def test_conv2d_paths_agree(isa, geometry, wide):
    b, ih, iw, ic, oc, kh, kw, (sh, sw), (dh, dw), (ph, pw) = geometry
    rng = np.random.default_rng(CONV_GEOMETRIES.index(geometry) * 2 + wide)
    oh, ow = out_size(ih, kh, sh, dh, ph), out_size(iw, kw, sw, dw, pw)
    x = rng.integers(-128, 128, (b, ih, iw, ic)).astype(np.int8)
    w = rng.integers(-128, 128, (oc, kh, kw, ic)).astype(np.int8)
    w.flat[::7] = -128
    bias = rng.integers(-2**31 if wide else -50000, 2**31 if wide else 50000, oc,
                        dtype=np.int64).astype(np.int32)
    mult, shift = requant(rng, oc, wide)
    for in_off, out_off, lo, hi in [(128, -128, -128, 127), (-127, 127, -128, 127),
                                    (int(rng.integers(-127, 129)), 5, -20, 90)]:
        out = np.empty((b, oh, ow, oc), np.int8)
        scalar, simd = both(lambda o: kernels.conv2d(
            x, w, bias, o, mult, shift, b, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, ph, pw,
            in_off, out_off, lo, hi), out)
        np.testing.assert_array_equal(simd, scalar)
    out = np.empty((b, oh, ow, oc), np.int8)
    scalar, simd = both(lambda o: kernels.conv2d(
        x, w, None, o, mult, shift, b, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, ph, pw,
        3, -4, -128, 127), out)
    np.testing.assert_array_equal(simd, scalar)


@needs_simd
@pytest.mark.parametrize("channels", [1, 7, 8, 9, 15, 16, 17, 40, 64])
@pytest.mark.parametrize("multiplier", [1, 2, 8])
def test_depthwise_paths_agree(isa, channels, multiplier):
    rng = np.random.default_rng(channels * 10 + multiplier)
    for b, ih, iw, kh, kw, (sh, sw), (dh, dw), (ph, pw) in [
            (1, 7, 6, 3, 3, (1, 1), (1, 1), (1, 1)),
            (2, 8, 9, 3, 3, (2, 2), (1, 1), (1, 1)),
            (1, 9, 7, 3, 2, (1, 2), (2, 3), (2, 1)),
            (1, 3, 4, 5, 5, (1, 1), (1, 1), (2, 2))]:
        oc = channels * multiplier
        oh, ow = out_size(ih, kh, sh, dh, ph), out_size(iw, kw, sw, dw, pw)
        x = rng.integers(-128, 128, (b, ih, iw, channels)).astype(np.int8)
        w = rng.integers(-128, 128, (1, kh, kw, oc)).astype(np.int8)
        w.flat[::5] = -128
        bias = rng.integers(-30000, 30000, oc).astype(np.int32)
        for wide in (False, True):
            mult, shift = requant(rng, oc, wide)
            for in_off in (128, -127, int(rng.integers(-127, 129))):
                out = np.empty((b, oh, ow, oc), np.int8)
                scalar, simd = both(lambda o: kernels.depthwise_conv2d(
                    x, w, bias, o, mult, shift, b, ih, iw, channels, oh, ow, multiplier, kh, kw,
                    sh, sw, dh, dw, ph, pw, in_off, -3, -128, 127), out)
                np.testing.assert_array_equal(simd, scalar)


@needs_simd
@pytest.mark.parametrize("in_depth", [1, 7, 16, 17, 40, 640])
@pytest.mark.parametrize("out_depth", [1, 3, 4, 10, 128])
def test_fully_connected_paths_agree(isa, in_depth, out_depth):
    rng = np.random.default_rng(in_depth * 1000 + out_depth)
    for batches in (1, 3):
        x = rng.integers(-128, 128, (batches, in_depth)).astype(np.int8)
        w = rng.integers(-128, 128, (out_depth, in_depth)).astype(np.int8)
        for wide in (False, True):
            bias = rng.integers(-2**31, 2**31, out_depth, dtype=np.int64).astype(np.int32)
            mult, shift = requant(rng, out_depth, wide)
            if not wide:  # per-tensor weights: one pair for every row
                mult, shift = mult[:1], shift[:1]
            for in_off in (128, -127, 0):
                out = np.empty((batches, out_depth), np.int8)
                scalar, simd = both(lambda o: kernels.fully_connected(
                    x, w, bias if wide else None, o, mult, shift, batches, in_depth, out_depth,
                    in_off, 7, -128, 127), out)
                np.testing.assert_array_equal(simd, scalar)


@needs_simd
def test_requantization_saturates_int32_min_times_int32_min(isa):
    """The one overflow of SaturatingRoundingDoublingHighMul, in every SIMD lane."""
    n = 24
    x = np.zeros((1, 1), np.int8)
    w = np.zeros((n, 1), np.int8)
    bias = np.full(n, -2**31, np.int32)
    mult = np.full(n, -2**31, np.int32)
    shift = np.zeros(n, np.int32)
    shift[1::3] = -31
    out = np.empty((1, n), np.int8)
    scalar, simd = both(lambda o: kernels.fully_connected(x, w, bias, o, mult, shift, 1, 1, n, 0,
                                                          0, -128, 127), out)
    np.testing.assert_array_equal(simd, scalar)
    assert scalar[0, 0] == 127  # INT32_MAX, clamped
    # the same through conv (vector requantization of 8 lanes at once)
    xc = np.zeros((1, 1, 1, 1), np.int8)
    wc = np.zeros((n, 1, 1, 1), np.int8)
    outc = np.empty((1, 1, 1, n), np.int8)
    scalar, simd = both(lambda o: kernels.conv2d(xc, wc, bias, o, mult, shift, 1, 1, 1, 1, 1, 1, n,
                                                 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, -128, 127), outc)
    np.testing.assert_array_equal(simd, scalar)


@needs_simd
@pytest.mark.parametrize("n", [1, 7, 8, 9, 64, 1001])
def test_add_paths_agree(isa, n):
    rng = np.random.default_rng(n)
    a = rng.integers(-128, 128, n).astype(np.int8)
    b = rng.integers(-128, 128, n).astype(np.int8)
    for _ in range(20):
        p = [int(rng.integers(-127, 129)), int(rng.integers(-127, 129)), int(rng.integers(0, 23)),
             int(rng.integers(0, 2**31)), int(rng.integers(-31, 32)),
             int(rng.integers(0, 2**31)), int(rng.integers(-31, 32)),
             int(rng.integers(0, 2**31)), int(rng.integers(-31, 32)),
             int(rng.integers(-128, 128)), -128, 127]
        out = np.empty(n, np.int8)
        # dims [1, 1, n, 1] with contiguous strides, and the plain [1, 1, 1, n] layout
        for dims, strides in [((1, 1, 1, n), (n, n, n, 1)), ((1, 1, n, 1), (n, n, 1, 1))]:
            scalar, simd = both(lambda o: kernels.add(a, b, o, *dims, *strides, *strides, *p), out)
            np.testing.assert_array_equal(simd, scalar)


def test_isa_names(isa):
    assert kernels.supported_isa() in ("scalar", "avx2")
    assert kernels.set_isa("scalar") in ("scalar", "avx2")
    assert kernels.isa() == "scalar"
    kernels.set_isa("auto")
    assert kernels.isa() == kernels.supported_isa()
    with pytest.raises(ValueError, match="unknown instruction set"):
        kernels.set_isa("sse9")
    with pytest.raises(TypeError, match="expected a str"):
        kernels.set_isa(1)


@pytest.mark.parametrize("value, expected", [("scalar", "scalar"), ("auto", None), ("", None)])
def test_environment_chooses_the_isa_at_import(value, expected):
    env = dict(os.environ, NPU_KERNELS_ISA=value)
    out = subprocess.run([sys.executable, "-c", "import npu_emulator._kernels as k; print(k.isa())"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == (expected or kernels.supported_isa())


def test_unknown_environment_value_fails_the_import():
    env = dict(os.environ, NPU_KERNELS_ISA="avx9000")
    proc = subprocess.run([sys.executable, "-c", "import npu_emulator._kernels"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "NPU_KERNELS_ISA=avx9000: unknown instruction set" in proc.stderr


@needs_simd
def test_every_accepted_input_offset_gives_the_same_results_on_both_paths(isa):
    """The binding accepts input offsets in the registry's range (minus an int8 zero point,
    as TFLite Micro) and both paths agree on every one, at the extremes of the inputs and
    weights (-128 * (-128 - 127) overflowed the AVX2 path's int16 products at -128)."""
    from npu_sdk import ops
    lo, hi = ops.PARAM_RANGES["input_offset"]
    x = np.array([[-128, 127, -128, 0, 1, -1, 127, -128, -128]], np.int8).reshape(1, 3, 3, 1)
    w = np.full((1, 3, 3, 1), -128, np.int8)
    fc_x, fc_w = x.reshape(1, 9), np.full((2, 9), -128, np.int8)
    mult, shift = np.full(2, 1 << 30, np.int32), np.full(2, -8, np.int32)
    for off in range(lo, hi + 1):
        out = np.empty((1, 1, 1, 1), np.int8)
        scalar, simd = both(lambda o: kernels.depthwise_conv2d(
            x, w, None, o, mult[:1], shift[:1], 1, 3, 3, 1, 1, 1, 1, 3, 3, 1, 1, 1, 1, 0, 0,
            off, 0, -128, 127), out)
        np.testing.assert_array_equal(simd, scalar, err_msg="depthwise, offset %d" % off)
        out = np.empty((1, 2), np.int8)
        scalar, simd = both(lambda o: kernels.fully_connected(
            fc_x, fc_w, None, o, mult, shift, 1, 9, 2, off, 0, -128, 127), out)
        np.testing.assert_array_equal(simd, scalar, err_msg="fully connected, offset %d" % off)
    out = np.empty((1, 1, 1, 1), np.int8)
    for off in (lo - 1, hi + 1):
        with pytest.raises(ValueError, match="input_offset"):
            kernels.depthwise_conv2d(x, w, None, out, mult[:1], shift[:1], 1, 3, 3, 1, 1, 1, 1,
                                     3, 3, 1, 1, 1, 1, 0, 0, off, 0, -128, 127)
    for off in (lo - 1, hi + 1, (1 << 31) - 1):
        with pytest.raises(ValueError, match="input_offset"):
            kernels.fully_connected(fc_x, fc_w, None, np.empty((1, 2), np.int8), mult, shift,
                                    1, 9, 2, off, 0, -128, 127)
