"""C kernels (npu_emulator._kernels) against the TFLite Micro oracle, tolerance 0.

Each case builds a one-op int8 model (tflite_build), runs it on TFLM, computes
the kernel parameters with npu_sdk.lower, runs the C kernel and compares bits.
All randomness is seeded; the whole file runs in a few seconds.
"""

import numpy as np
import pytest

from npu_sdk import lower
from tools import tflite_build as tb

kernels = pytest.importorskip("npu_emulator._kernels")

ACTIVATIONS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


# --- helpers -------------------------------------------------------------------

def run_fc(x, w, weight_scales, bias, input_q, output_q, activation):
    batches, in_depth = x.shape
    out_depth = w.shape[0]
    p = lower.fully_connected_params(input_q[0], input_q[1], weight_scales, output_q[0],
                                     output_q[1], activation, out_depth)
    out = np.zeros((batches, out_depth), np.int8)
    kernels.fully_connected(x, w, bias, out, p["mult"], p["shift"], batches, in_depth,
                            out_depth, p["input_offset"], p["output_offset"], p["act_min"],
                            p["act_max"])
    return out


def check_fc(rng, in_depth, out_depth, batches, input_q, weight_scales, output_q, activation,
             with_bias, bias_range=1 << 12):
    w = rng.integers(-127, 128, (out_depth, in_depth)).astype(np.int8)
    x = rng.integers(-128, 128, (batches, in_depth)).astype(np.int8)
    bias = (rng.integers(-bias_range, bias_range, out_depth).astype(np.int32)
            if with_bias else None)
    model = tb.fully_connected_model(in_depth, out_depth, batches, input_q, w, weight_scales,
                                     bias, output_q, activation)
    expected = tb.run_tflm(model, x)
    got = run_fc(x, w, weight_scales, bias, input_q, output_q, activation)
    assert got.dtype == expected.dtype == np.int8
    np.testing.assert_array_equal(got, expected)


def run_softmax(x, input_scale, beta):
    rows, depth = x.shape
    mult, shift, diff_min = lower.softmax_params(input_scale, beta)
    out = np.zeros_like(x)
    kernels.softmax(x, out, rows, depth, mult, shift, diff_min)
    return out


def check_softmax(x, input_scale, beta=1.0, zero_point=0):
    expected = tb.run_tflm(tb.softmax_model(list(x.shape), (input_scale, zero_point), beta), x)
    np.testing.assert_array_equal(run_softmax(x, input_scale, beta), expected)


# --- fully connected -----------------------------------------------------------

FC_SHAPES = [  # (in_depth, out_depth, batches)
    (1, 1, 1),
    (7, 5, 2),     # in_depth not a multiple of 16
    (16, 8, 1),
    (33, 10, 3),
    (100, 17, 4),
    (257, 3, 2),
]


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_fully_connected_matches_tflm(per_channel, activation):
    rng = np.random.default_rng(1000 + 10 * per_channel + ACTIVATIONS.index(activation))
    for in_depth, out_depth, batches in FC_SHAPES:
        for with_bias in (False, True):
            if per_channel:
                scales = rng.uniform(1e-3, 3e-2, out_depth).astype(np.float32)
            else:
                scales = [np.float32(rng.uniform(1e-3, 3e-2))]
            input_q = (float(rng.uniform(0.005, 0.2)), int(rng.integers(-128, 128)))
            output_q = (float(rng.uniform(0.02, 0.5)), int(rng.integers(-128, 128)))
            check_fc(rng, in_depth, out_depth, batches, input_q, scales, output_q, activation,
                     with_bias)


@pytest.mark.parametrize("case", [
    # (input_q, weight_scales, output_q): multipliers far from the usual range
    ((0.5, 0), [0.5], (1e-3, 0)),                 # real 250: shift > 0 (left shift path)
    ((1.0, -128), [1.0], (0.25, 127)),            # real 4, extreme zero points
    ((1e-3, 5), [1e-4], (10.0, 0)),               # real 1e-8: shift near -26
    ((1e-4, 0), [1e-5], (100.0, -3)),             # real 1e-11: flushed to multiplier 0
    ((0.02, 127), [2e-3, 7e-2, 1e-6], (0.05, -128)),  # per-channel, one tiny channel
    ((0.1, -1), [0.9, 1e-2, 3e-3, 5.0], (2e-3, 0)),   # per-channel, saturating channels
], ids=["left_shift", "zp_extremes", "tiny", "flush_to_zero", "pc_tiny", "pc_saturating"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_fully_connected_extreme_scales(case, activation):
    input_q, scales, output_q = case
    scales = np.asarray(scales, dtype=np.float32)
    out_depth = len(scales) if len(scales) > 1 else 6
    rng = np.random.default_rng(2000 + ACTIVATIONS.index(activation))
    for in_depth, batches in ((13, 3), (64, 1)):
        for with_bias in (False, True):
            check_fc(rng, in_depth, out_depth, batches, input_q, scales, output_q, activation,
                     with_bias, bias_range=1 << 20)


def test_fully_connected_per_tensor_scale_product():
    """The TFLM source reads as if per-tensor FC formed input_scale * weight_scale
    in float32; the oracle build forms it in double. These scales make the two
    multipliers differ (2126845107 vs 2126845055) and these biases, with zero
    inputs, land where that changes the output, so the case discriminates."""
    s_in, s_w, s_out = 0.00878317840397358, 0.008697723038494587, 2.5275585651397705
    bias = np.array([-3391312, -3358226, -3325140, -2034787], np.int32)
    x, w = np.zeros((1, 3), np.int8), np.zeros((4, 3), np.int8)
    expected = tb.run_tflm(tb.fully_connected_model(3, 4, 1, (s_in, 0), w, [s_w], bias,
                                                    (s_out, 0)), x)
    got = run_fc(x, w, [s_w], bias, (s_in, 0), (s_out, 0), "NONE")
    np.testing.assert_array_equal(got, expected)
    f32_mult, f32_shift = lower.quantize_multiplier(
        float(np.float32(s_in) * np.float32(s_w)) / s_out)
    assert (f32_mult, f32_shift) == (2126845107, -15)
    wrong = np.zeros_like(got)
    kernels.fully_connected(x, w, bias, wrong, np.full(4, f32_mult, np.int32),
                            np.full(4, f32_shift, np.int32), 1, 3, 4, 0, 0, -128, 127)
    assert not np.array_equal(wrong, expected)


def test_fully_connected_accepts_any_buffer_type():
    rng = np.random.default_rng(4)
    w = rng.integers(-127, 128, (4, 9)).astype(np.int8)
    x = rng.integers(-128, 128, (2, 9)).astype(np.int8)
    bias = rng.integers(-999, 999, 4).astype(np.int32)
    p = lower.fully_connected_params(0.05, 1, [0.01], 0.1, -2, "RELU", 4)
    expected = run_fc(x, w, [0.01], bias, (0.05, 1), (0.1, -2), "RELU")
    out = bytearray(8)
    kernels.fully_connected(x.tobytes(), memoryview(w.tobytes()), bytearray(bias.tobytes()), out,
                            p["mult"].tobytes(), memoryview(p["shift"]), 2, 9, 4,
                            p["input_offset"], p["output_offset"], p["act_min"], p["act_max"])
    np.testing.assert_array_equal(np.frombuffer(out, np.int8).reshape(2, 4), expected)


# --- softmax ---------------------------------------------------------------------

@pytest.mark.parametrize("input_scale", [0.004, 1.0 / 16, 0.1, 0.25, 1.0, 7.5, 100.0])
def test_softmax_matches_tflm(input_scale):
    rng = np.random.default_rng(int(input_scale * 1000))
    for rows, depth in ((1, 1), (1, 2), (3, 10), (2, 100), (4, 37)):
        x = rng.integers(-128, 128, (rows, depth)).astype(np.int8)
        check_softmax(x, input_scale)
        check_softmax(np.full((rows, depth), rng.integers(-128, 128), np.int8), input_scale)
        extremes = rng.choice(np.array([-128, 127, 126, -127, 0], np.int8), (rows, depth))
        check_softmax(extremes, input_scale)


def test_softmax_all_depths_and_beta():
    rng = np.random.default_rng(5)
    for depth in range(1, 101):
        scale = float(10 ** rng.uniform(-3, 1))
        beta = (1.0, 0.5, 2.0, 0.7)[depth % 4]
        x = rng.integers(-128, 128, (2, depth)).astype(np.int8)
        x[1] = -128  # a row of all-minimum inputs
        check_softmax(x, scale, beta, zero_point=int(rng.integers(-128, 128)))


def test_softmax_multiplier_cap():
    """Scales so large that beta * scale * 2**26 exceeds 2**31 - 1: capped multiplier,
    diff_min 0, only the maxima survive."""
    x = np.array([[127, 127, 126, -128], [5, 5, 5, 5], [0, -1, 3, 3]], np.int8)
    for scale in (64.0, 1000.0):
        assert lower.softmax_params(scale)[2] == 0
        check_softmax(x, scale)


# --- quantize / dequantize -----------------------------------------------------

QUANT_PARAMS = [(0.5, 0), (0.1, 3), (1.0 / 3.0, -128), (1.0 / 256, 127), (1e-3, -7), (100.0, 0)]


@pytest.mark.parametrize("scale,zero_point", QUANT_PARAMS)
def test_quantize_matches_tflm(scale, zero_point):
    s = np.float32(scale)
    k = np.arange(-300, 300, dtype=np.float32)
    ties = (k + np.float32(0.5)) * s                      # .5 boundaries, as float32
    values = np.concatenate([
        ties, np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf)),
        k * s,
        np.array([0.0, -0.0, 1e-30, -1e-30, 1e-40], np.float32),
        np.array([1e3, -1e3, 1e6, -1e6], np.float32) * s,  # far out of int8 range
    ]).astype(np.float32)
    expected = tb.run_tflm(tb.quantize_model([values.size], (scale, zero_point)), values)
    out = np.zeros(values.size, np.int8)
    kernels.quantize(values, out, values.size, scale, zero_point)
    np.testing.assert_array_equal(out, expected)


def test_quantize_saturates_beyond_int32():
    """|x / scale| >= 2**31 is undefined in TFLM's cast (x86 gives INT_MIN); we
    saturate like Arm's VCVT does on the boards, and map NaN to the zero point."""
    values = np.array([1e30, -1e30, np.inf, -np.inf, np.nan], np.float32)
    out = np.zeros(values.size, np.int8)
    kernels.quantize(values, out, values.size, 0.5, 3)
    np.testing.assert_array_equal(out, [127, -128, 127, -128, 3])


@pytest.mark.parametrize("scale,zero_point", QUANT_PARAMS + [(3.0e-38, 0), (1.7e38, 1)])
def test_dequantize_matches_tflm(scale, zero_point):
    values = np.arange(-128, 128, dtype=np.int8)
    expected = tb.run_tflm(tb.dequantize_model([values.size], (scale, zero_point)), values)
    out = np.zeros(values.size, np.float32)
    kernels.dequantize(values, out, values.size, scale, zero_point)
    assert expected.dtype == np.float32
    np.testing.assert_array_equal(out.view(np.int32), expected.view(np.int32))  # bitwise


# --- the binding refuses bad arguments before touching memory ----------------------

def fc_args(**overrides):
    """Valid fully_connected arguments for a [2, 9] x [4, 9] layer, with overrides."""
    args = dict(inp=np.zeros(18, np.int8), weights=np.zeros(36, np.int8),
                bias=np.zeros(4, np.int32), out=np.zeros(8, np.int8),
                mult=np.full(4, 1 << 30, np.int32), shift=np.zeros(4, np.int32),
                batches=2, in_depth=9, out_depth=4, input_offset=0, output_offset=0,
                act_min=-128, act_max=127)
    args.update(overrides)
    return list(args.values())


@pytest.mark.parametrize("overrides,exc,match", [
    (dict(inp=np.zeros(17, np.int8)), ValueError, r"inp: buffer too small: need 18 bytes"),
    (dict(weights=bytes(35)), ValueError, r"weights: buffer too small: need 36 bytes"),
    (dict(bias=np.zeros(3, np.int32)), ValueError, r"bias: buffer too small: need 16 bytes"),
    (dict(out=bytearray(7)), ValueError, r"out: buffer too small: need 8 bytes"),
    (dict(mult=bytes(15)), ValueError, r"mult: buffer too small: need 16 bytes"),
    (dict(shift=np.zeros(3, np.int32)), ValueError, r"shift: buffer too small"),
    (dict(mult=np.zeros(4, np.int64)), TypeError, r"mult: expected int32 elements.*'l'"),
    (dict(bias=np.zeros(4, np.float32)), TypeError, r"bias: expected int32 elements.*'f'"),
    (dict(shift=memoryview(bytearray(17))[1:]), ValueError, r"shift: int32 buffer is not 4-byte"),
    (dict(out=bytes(8)), TypeError, r"out: the output buffer is read-only \(bytes\)"),
    (dict(inp=[0] * 18), TypeError, r"inp: expected a buffer .* got list"),
    (dict(inp=np.zeros((18, 2), np.int8)[:, 0]), ValueError,
     r"inp: cannot use this numpy.ndarray as a flat C-contiguous"),
    (dict(batches=0), ValueError, r"batches must be positive, got 0"),
    (dict(in_depth=-9), ValueError, r"in_depth must be positive, got -9"),
    (dict(in_depth=200000), ValueError, r"in_depth must be in \[1, 131071\]"),
    (dict(act_min=5, act_max=4), ValueError, r"act_max must be in \[5, 127\], got 4"),
    (dict(act_min=-129), ValueError, r"act_min must be in \[-128, 127\]"),
    (dict(shift=np.array([0, 0, 32, 0], np.int32)), ValueError, r"shift\[2\] must be in \[-31, 31\], got 32"),
])
def test_fully_connected_rejects_bad_arguments(overrides, exc, match):
    with pytest.raises(exc, match=match):
        kernels.fully_connected(*fc_args(**overrides))


def test_read_only_numpy_output_is_refused():
    out = np.zeros(8, np.int8)
    out.flags.writeable = False
    with pytest.raises(TypeError, match=r"out: the output buffer is read-only \(numpy.ndarray\)"):
        kernels.fully_connected(*fc_args(out=out))
    with pytest.raises(TypeError, match=r"out: the output buffer is read-only"):
        kernels.softmax(np.zeros(4, np.int8), bytes(4), 1, 4, 1 << 30, 20, -100)


def test_error_paths_release_every_buffer():
    """A leaked Py_buffer keeps a bytearray export alive, which forbids resizing."""
    held = [bytearray(18), bytearray(36), bytearray(16), bytearray(8), bytearray(16),
            bytearray(16)]
    failing = [
        dict(shift=memoryview(bytearray(17))[1:]),      # fails at the last buffer
        dict(mult=np.zeros(4, np.int64)),               # format error mid-way
        dict(out=bytes(8)),                             # read-only output
        dict(shift=bytearray(np.full(4, 40, np.int32).tobytes())),  # value check after all
    ]
    for overrides in failing:
        args = fc_args(inp=held[0], weights=held[1], bias=held[2], out=held[3], mult=held[4],
                       shift=held[5])
        names = ["inp", "weights", "bias", "out", "mult", "shift"]
        for name, value in overrides.items():
            args[names.index(name)] = value
        with pytest.raises((TypeError, ValueError)):
            kernels.fully_connected(*args)
        for buf in held:
            buf.extend(b"\0")  # raises BufferError if an export leaked
            del buf[-1:]
    args = fc_args(inp=held[0], weights=held[1], bias=held[2], out=held[3], mult=held[4],
                   shift=held[5])
    kernels.fully_connected(*args)  # and the success path releases too
    held[3].extend(b"\0")


@pytest.mark.parametrize("call,exc,match", [
    (lambda: kernels.softmax(bytes(9), bytearray(10), 2, 5, 1 << 30, 20, -100),
     ValueError, r"inp: buffer too small: need 10 bytes"),
    (lambda: kernels.softmax(bytes(10), bytearray(10), 2, 5, 1 << 30, 32, -100),
     ValueError, r"input_left_shift must be in \[0, 31\]"),
    (lambda: kernels.softmax(bytes(10), bytearray(10), 2, 5, 1 << 30, 20, 1),
     ValueError, r"diff_min must be in \[-2147483648, 0\], got 1"),
    (lambda: kernels.softmax(bytes(10), bytearray(10), 0, 5, 1 << 30, 20, -1),
     ValueError, r"rows must be positive"),
    (lambda: kernels.quantize(np.zeros(4, np.float32), bytearray(3), 4, 0.5, 0),
     ValueError, r"out: buffer too small: need 4 bytes"),
    (lambda: kernels.quantize(np.zeros(4, np.float64), bytearray(4), 4, 0.5, 0),
     TypeError, r"inp: expected float32 elements.*'d'"),
    (lambda: kernels.quantize(np.zeros(4, np.float32), bytearray(4), 4, 0.0, 0),
     ValueError, r"scale must be a finite float32 > 0, got 0.0"),
    (lambda: kernels.quantize(np.zeros(4, np.float32), bytearray(4), 4, float("nan"), 0),
     ValueError, r"scale must be a finite float32 > 0"),
    (lambda: kernels.dequantize(bytes(4), bytearray(15), 4, 0.5, 0),
     ValueError, r"out: buffer too small: need 16 bytes \(4 float32 elements\), got 15"),
    (lambda: kernels.dequantize(bytes(4), np.zeros(4, np.int32), 4, 0.5, 0),
     TypeError, r"out: expected float32 elements.*'i'"),
    (lambda: kernels.dequantize(bytes(4), np.zeros(4, np.float32), 4, 0.5, 128),
     ValueError, r"zero_point must be in \[-128, 127\], got 128"),
])
def test_other_kernels_reject_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --- window and elementwise kernels refuse bad geometry before touching memory -------

def _conv_args(**overrides):
    """Valid conv2d arguments: [1, 4, 4, 2] -> 3x3 SAME -> [1, 4, 4, 3]."""
    args = dict(inp=np.zeros(32, np.int8), weights=np.zeros(54, np.int8),
                bias=np.zeros(3, np.int32), out=np.zeros(48, np.int8),
                mult=np.full(3, 1 << 30, np.int32), shift=np.zeros(3, np.int32),
                batches=1, in_h=4, in_w=4, in_c=2, out_h=4, out_w=4, out_c=3, k_h=3, k_w=3,
                stride_h=1, stride_w=1, dilation_h=1, dilation_w=1, pad_h=1, pad_w=1,
                input_offset=0, output_offset=0, act_min=-128, act_max=127)
    args.update(overrides)
    return list(args.values())


def _ew_args(n_extra=0, **overrides):
    args = dict(in1=np.zeros(12, np.int8), in2=np.zeros(4, np.int8), out=np.zeros(12, np.int8),
                d0=1, d1=1, d2=3, d3=4, a0=0, a1=0, a2=4, a3=1, b0=0, b1=0, b2=0, b3=1)
    args.update(overrides)
    return list(args.values())


@pytest.mark.parametrize("call,exc,match", [
    (lambda: kernels.conv2d(*_conv_args(weights=np.zeros(53, np.int8))),
     ValueError, r"weights: buffer too small: need 54 bytes"),
    (lambda: kernels.conv2d(*_conv_args(out=np.zeros(47, np.int8))),
     ValueError, r"out: buffer too small: need 48 bytes"),
    (lambda: kernels.conv2d(*_conv_args(stride_h=0)), ValueError, r"bad height geometry"),
    (lambda: kernels.conv2d(*_conv_args(pad_w=-1)), ValueError, r"bad width geometry"),
    (lambda: kernels.conv2d(*_conv_args(dilation_w=1 << 29)), ValueError, r"bad width geometry"),
    (lambda: kernels.conv2d(*_conv_args(in_c=8000, inp=np.zeros(128000, np.int8))),
     ValueError, r"k_h \* k_w \* in_c must be at most 65535"),
    (lambda: kernels.conv2d(*_conv_args(input_offset=200)), ValueError, r"input_offset"),
    (lambda: kernels.conv2d(*_conv_args(shift=np.array([0, 40, 0], np.int32))),
     ValueError, r"shift\[1\] must be in \[-31, 31\]"),
    (lambda: kernels.depthwise_conv2d(*_conv_args(out_c=2, weights=np.zeros(35, np.int8))),
     ValueError, r"weights: buffer too small: need 36 bytes"),
    (lambda: kernels.average_pool2d(bytes(32), bytearray(8), 1, 4, 4, 2, 2, 2, 2, 2, 3, 3, 2, 0,
                                    -128, 127),
     ValueError, r"pooling window lies wholly in the padding"),
    (lambda: kernels.max_pool2d(bytes(31), bytearray(8), 1, 4, 4, 2, 2, 2, 2, 2, 2, 2, 0, 0,
                                -128, 127),
     ValueError, r"inp: buffer too small: need 32 bytes"),
    (lambda: kernels.add(*_ew_args(in2=np.zeros(3, np.int8)), 0, 0, 20, 1 << 30, -1, 1 << 30,
                         -1, 1 << 30, -10, 0, -128, 127),
     ValueError, r"in2: buffer too small: need 4 bytes"),
    (lambda: kernels.add(*_ew_args(), 0, 0, 31, 1 << 30, -1, 1 << 30, -1, 1 << 30, -10, 0,
                         -128, 127),
     ValueError, r"left_shift must be in \[0, 22\]"),
    (lambda: kernels.mul(*_ew_args(a2=-4), 0, 0, 1 << 30, -3, 0, -128, 127),
     ValueError, r"in1 strides must be in"),
    (lambda: kernels.mul(*_ew_args(out=bytes(12)), 0, 0, 1 << 30, -3, 0, -128, 127),
     TypeError, r"out: the output buffer is read-only"),
])
def test_window_and_elementwise_kernels_reject_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_conv_error_paths_release_every_buffer():
    held = [bytearray(32), bytearray(54), bytearray(12), bytearray(48), bytearray(12),
            bytearray(12)]
    args = _conv_args(inp=held[0], weights=held[1], bias=held[2], out=held[3], mult=held[4],
                      shift=bytearray(np.array([0, 99, 0], np.int32).tobytes()))
    with pytest.raises(ValueError):
        kernels.conv2d(*args)
    for buf in held[:5]:
        buf.extend(b"\0")  # raises BufferError if an export leaked


# --- lookup table, strided copy, mean: the binding checks every buffer -----------------

def _copy_reference(x, out_size, dims, a, b, out_offset, fill, fill_value):
    out = np.full(out_size, fill_value if fill else 0, np.int8)
    for idx in np.ndindex(*dims):
        out[out_offset + sum(i * s for i, s in zip(idx, b))] = x[sum(i * s for i, s in zip(idx, a))]
    return out


COPY_CASES = [  # dims, input strides, output strides, out_offset, fill, fill_value
    ((2, 3, 4, 5), (60, 20, 5, 1), (120, 30, 6, 1), 7, 1, -3),
    ((1, 1, 4, 3), (0, 0, 3, 1), (0, 0, 1, 4), 0, 0, 0),      # transposing strides
    ((1, 2, 1, 6), (0, 12, 0, 2), (0, 6, 0, 1), 3, 1, 127),  # strided reads
]


@pytest.mark.parametrize("case", COPY_CASES)
def test_copy_matches_a_reference(case):
    dims, a, b, off, fill, value = case
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, 1 + sum((d - 1) * s for d, s in zip(dims, a))).astype(np.int8)
    size = off + 1 + sum((d - 1) * s for d, s in zip(dims, b)) + 5
    out = np.zeros(size, np.int8)
    kernels.copy(x, out, *dims, *a, *b, off, fill, value)
    np.testing.assert_array_equal(out, _copy_reference(x, size, dims, a, b, off, fill, value))


def test_lut_indexes_the_table_by_value_plus_128():
    table = np.arange(255, -1, -1).astype(np.uint8).view(np.int8)
    x = np.arange(-128, 128, dtype=np.int8)
    out = bytearray(256)
    kernels.lut(x, table, out, 256)
    np.testing.assert_array_equal(np.frombuffer(out, np.int8), table[x.astype(np.int32) + 128])


def _copy_args(**overrides):
    args = dict(inp=np.zeros(12, np.int8), out=np.zeros(20, np.int8), d0=1, d1=1, d2=3, d3=4,
                a0=0, a1=0, a2=4, a3=1, b0=0, b1=0, b2=5, b3=1, out_offset=2, fill=1,
                fill_value=0)
    args.update(overrides)
    return list(args.values())


def _mean_args(**overrides):
    args = dict(inp=np.zeros(24, np.int8), out=np.zeros(6, np.int8), batches=2, in_h=2, in_w=2,
                channels=3, input_offset=5, multiplier=1 << 30, shift=-1, output_offset=0)
    args.update(overrides)
    return list(args.values())


@pytest.mark.parametrize("call,exc,match", [
    (lambda: kernels.lut(np.zeros(8, np.int8), np.zeros(255, np.int8), bytearray(8), 8),
     ValueError, r"table: buffer too small: need 256 bytes"),
    (lambda: kernels.lut(np.zeros(7, np.int8), np.zeros(256, np.int8), bytearray(8), 8),
     ValueError, r"inp: buffer too small: need 8 bytes"),
    (lambda: kernels.lut(bytes(8), bytes(256), bytes(8), 8), TypeError, r"out: the output"),
    (lambda: kernels.lut(bytes(8), bytes(256), bytearray(8), 0), ValueError, r"n must be positive"),
    (lambda: kernels.copy(*_copy_args(out=np.zeros(15, np.int8))),
     ValueError, r"out: buffer too small: need 16 bytes"),
    (lambda: kernels.copy(*_copy_args(inp=np.zeros(11, np.int8))),
     ValueError, r"inp: buffer too small: need 12 bytes"),
    (lambda: kernels.copy(*_copy_args(b2=-5)), ValueError, r"out strides must be in"),
    (lambda: kernels.copy(*_copy_args(d0=0)), ValueError, r"dims must be in"),
    (lambda: kernels.copy(*_copy_args(fill_value=128)), ValueError, r"fill_value must be in"),
    (lambda: kernels.copy(*_copy_args(d2=1 << 20, b2=1 << 12)), ValueError, r"out span"),
    (lambda: kernels.mean(*_mean_args(inp=np.zeros(23, np.int8))),
     ValueError, r"inp: buffer too small: need 24 bytes"),
    (lambda: kernels.mean(*_mean_args(out=np.zeros(5, np.int8))),
     ValueError, r"out: buffer too small: need 6 bytes"),
    (lambda: kernels.mean(*_mean_args(shift=32)), ValueError, r"shift must be in"),
    (lambda: kernels.mean(*_mean_args(in_h=1 << 12, in_w=1 << 12)), ValueError,
     r"in_h \* in_w must be in"),
])
def test_lut_copy_mean_reject_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_copy_error_paths_release_every_buffer():
    held = [bytearray(12), bytearray(15)]
    with pytest.raises(ValueError):
        kernels.copy(*_copy_args(inp=held[0], out=held[1]))
    for buf in held:
        buf.extend(b"\0")  # raises BufferError if an export leaked


# --- the 16x8 bindings' argument checks --------------------------------------------

#: The npu_checks.c function of each 16x8 binding whose name is not npu_args_<binding>.
_S16_CHECKS = {"conv2d_s16": "conv_s16", "depthwise_conv2d_s16": "conv_s16",
               "dequantize_s16": "quantize_s16", "add_s16": "arith_s16", "mul_s16": "arith_s16",
               "logistic_s16": "sigmoid_s16", "tanh_s16": "sigmoid_s16",
               "average_pool2d_s16": "pool", "max_pool2d_s16": "pool"}


def test_16x8_bindings_check_their_arguments_in_npu_checks():
    """Every 16x8 binding's checks are an npu_args_* function of npu_checks.c, which the
    native module can share (not a shim inside _kernels.c)."""
    from tests.conftest import ROOT
    header = (ROOT / "board_emulator" / "csrc" / "npu_checks.h").read_text()
    names = sorted(n for n in dir(kernels) if n.endswith("_s16"))
    assert len(names) >= 14, names
    for name in names:
        assert "int npu_args_%s(" % _S16_CHECKS.get(name, name) in header, name


def _i16(n):
    return np.zeros(n, np.int16)


@pytest.mark.parametrize("call, match", [
    (lambda: kernels.fully_connected_s16(_i16(4), np.zeros(8, np.int8), None, _i16(2),
                                         np.ones(2, np.int32), np.array([0, 8], np.int32),
                                         1, 4, 2, -32768, 32767), r"shift\[1\] must be in \[-31, 7\]"),
    (lambda: kernels.fully_connected_s16(_i16(4), np.zeros(8, np.int8),
                                         np.array([0, 1 << 47], np.int64), _i16(2),
                                         np.ones(2, np.int32), np.zeros(2, np.int32),
                                         1, 4, 2, -32768, 32767), r"bias\[1\] must be within"),
    (lambda: kernels.conv2d_s16(_i16(9), np.zeros(9, np.int8), None, _i16(1),
                                np.ones(1, np.int32), np.zeros(1, np.int32), 1, 3, 3, 1, 1, 1, 1,
                                3, 3, 1, 1, 1, 1, 0, 0, -40000, 32767), "act_min"),
    (lambda: kernels.depthwise_conv2d_s16(_i16(9), np.zeros(9, np.int8), np.zeros(1, np.int32),
                                          _i16(1),
                                          np.ones(1, np.int32), np.zeros(1, np.int32), 1, 3, 3,
                                          1, 1, 1, 1, 3, 3, 1, 1, 1, 1, 0, 0, 0, 32767),
     "bias"),  # int32 bias for an int64 one: refused by its size
    (lambda: kernels.quantize_s16(np.zeros(4, np.float32), _i16(4), 4, 0.5, 40000), "zero_point"),
    (lambda: kernels.add_s16(_i16(4), _i16(4), _i16(4), 1, 1, 1, 4, 0, 0, 0, 1, 0, 0, 0, 1,
                             16, 1 << 30, 0, 1 << 30, 0, 1 << 30, 0, -32768, 32767), "left_shift"),
    (lambda: kernels.softmax_s16(_i16(4), _i16(4), _i16(513), _i16(513), 1, 4, 1 << 30, 40),
     "input_shift"),
    (lambda: kernels.tanh_s16(_i16(4), _i16(256), _i16(4), 4, 1 << 20, 3), "input_multiplier"),
    (lambda: kernels.mean_s16(_i16(65536), _i16(1), 1, 256, 256, 1, 1 << 30, 0), "in_h \\* in_w"),
    (lambda: kernels.rescale_s16(_i16(4), _i16(3), 4, 1 << 30, 1, 1 << 30, 1, 0, 32767), "out"),
])
def test_16x8_bindings_refuse_what_the_kernels_do_not_trust(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
