"""The 256-entry tables of the int8 pointwise ops (npu_sdk.lower.*_lut) vs TFLite Micro.

Every int8 input value goes through a one-op model on the TFLM oracle; the table
computed on the host with TFLM's integer arithmetic must equal the oracle's output
bit for bit, for many input/output quantizations per op (seeded, plus edge scales).
The board only indexes these tables (the LUT kernel), so this is the whole proof of
arithmetic; test_ops_pipeline.py runs the same ops through both kernel sets.
"""
import numpy as np
import pytest

from npu_sdk import lower
from npu_sdk.errors import ModelError
from tools import tflite_build as tb

X = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
FIXED_OUTPUT = {"LOGISTIC": (1 / 256, -128), "TANH": (1 / 128, 0)}


def _table(kind, in_q, out_q, alpha):
    if kind in ("RELU", "RELU6"):
        return lower.relu_lut(kind, *in_q, *out_q)
    if kind == "LEAKY_RELU":
        return lower.leaky_relu_lut(alpha, *in_q, *out_q)
    if kind == "HARD_SWISH":
        return lower.hard_swish_lut(*in_q, *out_q)
    if kind == "LOGISTIC":
        return lower.logistic_lut(*in_q)
    if kind == "TANH":
        return lower.tanh_lut(*in_q)
    return lower.requantize_lut(*in_q, *out_q)


def _quantizations(kind, rng, n):
    """n random (input_q, output_q, alpha), input scales 1e-3..3, ratios 1/5..5, plus edges."""
    edges = [((1e-3, -128), (2e-3, 127)), ((0.5, 127), (0.25, -128)), ((3.0, 0), (3.0, 0)),
             ((0.0078125, 0), (0.0078125, 0))]
    out = []
    for i in range(n + len(edges)):
        if i < len(edges):
            in_q, out_q = edges[i]
        else:
            s_in = float(np.float32(10 ** rng.uniform(-3, 0.5)))
            s_out = float(np.float32(s_in * 10 ** rng.uniform(-0.7, 0.7)))
            in_q = (s_in, int(rng.integers(-128, 128)))
            out_q = (s_out, int(rng.integers(-128, 128)))
        out_q = FIXED_OUTPUT.get(kind, in_q if kind == "RELU6" else out_q)
        alpha = float(rng.choice([0.01, 0.1, 0.2, 0.3, -0.5, 1.5])) if kind == "LEAKY_RELU" else None
        out.append((in_q, out_q, alpha))
    return out


@pytest.mark.parametrize("kind", ["RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH", "LOGISTIC",
                                  "TANH", "QUANTIZE"])
def test_table_matches_tflm_on_every_input(kind):
    rng = np.random.default_rng(sum(map(ord, kind)))
    distinct = 0
    for in_q, out_q, alpha in _quantizations(kind, rng, 16):
        want = tb.run_tflm(tb.unary_model(kind, [1, 256], in_q, out_q, alpha), X).reshape(-1)
        got = _table(kind, in_q, out_q, alpha)
        assert got.dtype == np.int8 and got.shape == (256,)
        bad = np.nonzero(got != want)[0]
        assert bad.size == 0, "%s %s -> %s alpha %s: inputs %s give %s, TFLM %s" % (
            kind, in_q, out_q, alpha, bad[:5] - 128, got[bad[:5]], want[bad[:5]])
        distinct += len(np.unique(want)) > 8
    assert distinct >= 10  # the cases exercise the arithmetic, not just saturation


def test_relu6_keeps_the_input_quantization():
    """TFLM's int8 RELU6 clamps raw input values; it never rescales."""
    table = lower.relu_lut("RELU6", 0.05, -10, 0.3, 40)
    hi = -10 + round(6 / np.float32(0.05))
    np.testing.assert_array_equal(table, np.clip(np.arange(-128, 128), -10, hi))


@pytest.mark.parametrize("call", [
    lambda: lower.logistic_lut(1e-9, 0),     # left shift below 0
    lambda: lower.tanh_lut(40.0, 0),          # left shift above 31
    lambda: lower.hard_swish_lut(0.001, 0, 10.0, 0),  # output exponent below -15
    lambda: lower.mean_params(1.0, 1e-12, 16),
])
def test_parameters_outside_tflm_range_are_refused(call):
    with pytest.raises(ModelError):
        call()


@pytest.mark.parametrize("count", [1, 2, 3, 49, 64, 1000, 1 << 23])
def test_mean_multiplier_folds_in_the_count(count):
    """mean_params divides the multiplier by count after a shift of floor(log2(count))."""
    mult, shift = lower.mean_params(0.1, 0.05, count)
    base_mult, base_shift = lower.quantize_multiplier(float(np.float32(0.1)) / float(np.float32(0.05)))
    extra = min(count.bit_length() - 1, 32, 31 + base_shift)
    assert (mult, shift) == ((base_mult << extra) // count, base_shift - extra)
    assert 0 < mult < 1 << 31
