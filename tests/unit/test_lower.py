"""npu_sdk.lower against hand-derived expectations (the oracle runs live in
tests/conformance/test_c_kernels.py)."""

import math

import numpy as np
import pytest

from npu_sdk import lower
from npu_sdk.errors import ModelError

Q30 = 1 << 30


@pytest.mark.parametrize("real,expected", [
    (0.0, (0, 0)),
    (1.0, (Q30, 1)),                       # frexp(1) = 0.5 * 2**1
    (0.5, (Q30, 0)),
    (0.25, (Q30, -1)),
    (2.0, (Q30, 2)),
    (0.75, (3 << 29, 0)),
    (1.0 / 3.0, (1431655765, -1)),        # 2/3 * 2**31 = 1431655765.33 -> down
    (2.0 / 3.0, (1431655765, 0)),
    (0.5 + 2.0 ** -32, (Q30 + 1, 0)),     # q * 2**31 = 2**30 + 0.5: ties away from zero
    (0.5 + 2.0 ** -33, (Q30, 0)),         # 2**30 + 0.25 rounds down
    (1.0 - 2.0 ** -33, (Q30, 1)),         # rounds up to 2**31: renormalised to 2**30, shift + 1
    (1.0 - 2.0 ** -32, (Q30, 1)),         # 2**31 - 0.5 also ties up to 2**31
    (1.0 - 2.0 ** -31, ((1 << 31) - 1, 0)),  # exactly representable, largest multiplier
    ((1 << 31) - 1.0, ((1 << 31) - 1, 31)),  # softmax's cap
    (2.0 ** -31, (Q30, -30)),
    (2.0 ** -32, (Q30, -31)),             # smallest shift kept
    (2.0 ** -33, (0, 0)),                 # shift -32: flushed to zero
    (1e-300, (0, 0)),
    (-0.5, (-Q30, 0)),
    (-0.75, (-(3 << 29), 0)),
])
def test_quantize_multiplier(real, expected):
    assert lower.quantize_multiplier(real) == expected


def test_quantize_multiplier_reconstructs_value():
    rng = np.random.default_rng(7)
    for real in 10.0 ** rng.uniform(-9, 3, 200):
        mult, shift = lower.quantize_multiplier(real)
        assert Q30 <= mult < 1 << 31
        assert math.isclose(mult * 2.0 ** (shift - 31), real, rel_tol=2.0 ** -30)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_quantize_multiplier_rejects_non_finite(bad):
    with pytest.raises(ModelError, match="must be finite"):
        lower.quantize_multiplier(bad)


@pytest.mark.parametrize("activation,scale,zp,expected", [
    ("NONE", 0.1, 0, (-128, 127)),
    ("RELU", 0.1, -5, (-5, 127)),
    ("RELU", 0.1, -200, (-128, 127)),       # quantize(0) below qmin: clamped
    ("RELU6", 6.0 / 255.0, -128, (-128, 127)),
    ("RELU6", 0.01, 10, (10, 127)),         # 6 / 0.01 = 600: clamped to qmax
    ("RELU6", 0.05, -128, (-128, -8)),      # -128 + 120
    ("RELU_N1_TO_1", 1.0 / 128, 0, (-128, 127)),
    ("RELU_N1_TO_1", 0.02, 3, (-47, 53)),
    # float32(1) / float32(0.4) rounds to exactly 2.5 in float32: ties go away
    # from zero (Python's round() would give 2), and the double quotient
    # 2.4999999627 would give 2 as well.
    ("RELU_N1_TO_1", 0.4, 0, (-3, 3)),
])
def test_activation_range(activation, scale, zp, expected):
    assert lower.activation_range(activation, scale, zp) == expected


def test_activation_range_refuses_int32_overflow():
    with pytest.raises(ModelError, match="too small"):
        lower.activation_range("RELU6", 1e-12, 0)
    with pytest.raises(ModelError, match="unsupported fused activation 'TANH'"):
        lower.activation_range("TANH", 0.1, 0)


def test_fully_connected_params_per_tensor_and_per_channel():
    p = lower.fully_connected_params(0.5, 3, [0.25], 0.125, -7, "RELU", 3)
    # real = 0.5 * 0.25 / 0.125 = 1.0 -> (2**30, 1), replicated
    assert p["mult"].dtype == np.int32 and p["shift"].dtype == np.int32
    assert p["mult"].tolist() == [Q30] * 3 and p["shift"].tolist() == [1] * 3
    assert (p["input_offset"], p["output_offset"]) == (-3, -7)
    assert (p["act_min"], p["act_max"]) == (-7, 127)
    p = lower.fully_connected_params(0.5, 0, [0.25, 0.5, 2.0 ** -40], 0.125, 0, "NONE")
    assert p["mult"].tolist() == [Q30, Q30, 0] and p["shift"].tolist() == [1, 2, 0]


def test_fully_connected_params_forms_scale_product_in_double():
    """Per-tensor and per-channel both use double(in) * double(w) / double(out)."""
    s_in, s_w, s_out = 0.00878317840397358, 0.008697723038494587, 2.5275585651397705
    per_tensor = lower.fully_connected_params(s_in, 0, [s_w], s_out, 0, "NONE", 2)
    per_channel = lower.fully_connected_params(s_in, 0, [s_w, s_w], s_out, 0, "NONE")
    assert per_tensor["mult"].tolist() == per_channel["mult"].tolist() == [2126845055] * 2
    assert per_tensor["shift"].tolist() == [-15, -15]
    # A float32 product would have given a different multiplier here.
    f32_product = float(np.float32(s_in) * np.float32(s_w)) / s_out
    assert lower.quantize_multiplier(f32_product) == (2126845107, -15)


def test_fully_connected_params_rejects_scale_count_mismatch():
    with pytest.raises(ModelError, match="2 weight scales for 3 output channels"):
        lower.fully_connected_params(0.5, 0, [0.1, 0.2], 0.1, 0, "NONE", 3)


@pytest.mark.parametrize("scale,beta,expected", [
    # real = beta * scale * 2**26, capped at 2**31 - 1; diff_min = -floor(31 * 2**26 / 2**shift)
    (2.0 ** -8, 1.0, (Q30, 19, -3968)),
    (1.0, 1.0, (Q30, 27, -15)),             # 31 * 2**26 / 2**27 = 15.5
    (0.5, 2.0, (Q30, 27, -15)),             # beta folds into the multiplier
    (64.0, 1.0, ((1 << 31) - 1, 31, 0)),    # capped: only the row maxima count
    (2.0 ** -25, 1.0, (Q30, 2, -(31 << 24))),
])
def test_softmax_params(scale, beta, expected):
    assert lower.softmax_params(scale, beta) == expected


def test_softmax_params_rounds_beta_and_scale_to_float32():
    scale = 0.1  # float32(0.1) != 0.1
    mult, shift, _ = lower.softmax_params(scale)
    assert (mult, shift) == lower.quantize_multiplier(float(np.float32(scale)) * 2.0 ** 26)


def test_softmax_params_refuses_tiny_scale():
    with pytest.raises(ModelError, match="too small for int8 softmax"):
        lower.softmax_params(2.0 ** -27)
