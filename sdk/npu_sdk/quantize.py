"""Post-training quantization: float Graph + calibration data -> int8 Graph.

Follows the TFLite int8 quantization spec (the one TFLite Micro implements):

- weights of FULLY_CONNECTED / CONV_2D (quantized dimension 0) and
  DEPTHWISE_CONV_2D (dimension 3): symmetric int8 in [-127, 127], zero point 0,
  one scale per output channel (or one per tensor when asked);
- bias: int32, zero point 0, scale = input_scale * weight_scale (per channel);
- activations: asymmetric per-tensor int8, range from calibration, nudged to
  contain 0 exactly;
- ADD, MUL, MEAN, RELU, LEAKY_RELU, HARD_SWISH: the output range from
  calibration (each input keeps its own producer's quantization; a constant
  operand gets its own per-tensor parameters);
- SOFTMAX and LOGISTIC output: scale 1/256, zero point -128; TANH: 1/128, 0;
  RESHAPE, pooling, RELU6 and PAD outputs share their input's scale and zero point.

The float model's activation ranges come from running it in LiteRT over the
calibration samples with every intermediate tensor kept. Multipliers, shifts
and clamps are not computed here: they are the compiler's (lower.py) job. See
docs/quantization.md for the arithmetic and the options.
"""
import copy
import json
import math
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import ops, reference, rewrite, tflite_writer
from .errors import ModelError, UnsupportedOpError
from .graph import Graph, Op, Tensor
from .quant_methods import DEFAULT_METHOD, DEFAULT_PERCENTILE, METHODS

MIN_CALIBRATION_SAMPLES = 100  # fewer: CalibrationWarning
UNSTABLE_RANGE = 0.25  # ranges of the two halves differing by more than this fraction of the range: warning
MAX_VALUES_PER_SAMPLE = 4096  # per tensor; larger activations are subsampled for percentile/mse

FLOAT32 = np.dtype(np.float32)
INT8 = np.dtype(np.int8)
INT16 = np.dtype(np.int16)
#: activation types `activations=` takes: int8, or int16 (TFLite's 16x8: int16 activations
#: with zero point 0, int8 weights, int64 bias)
ACTIVATIONS = ("int8", "int16")
INT32 = np.dtype(np.int32)

# How each op's output is quantized: the registry's (npu_sdk/ops.py) quant, weights and fixed_output.
_WEIGHTED = {name: op.weights for name, op in ops.OPS.items() if op.quant == ops.WEIGHTED}
_CALIBRATED = tuple(name for name, op in ops.OPS.items() if op.quant == ops.CALIBRATED)
_SAME_AS_INPUT = tuple(name for name, op in ops.OPS.items() if op.quant == ops.SAME_AS_INPUT)
_FIXED_OUTPUT = {name: op.fixed_output for name, op in ops.OPS.items() if op.quant == ops.FIXED}
QUANTIZABLE = ops.QUANTIZABLE

_OVERRIDE_KEYS = ("method", "percentile", "per_tensor", "range", "activations")


class CalibrationWarning(UserWarning):
    """The calibration set is too small or gives unstable ranges."""


@dataclass
class QuantizationResult:
    graph: Graph  # the int8 Graph, ready for compiler.compile_graph
    report: list  # one dict per layer, worst SQNR first (see layer_report)
    warnings: list = field(default_factory=list)  # calibration warnings, as strings


# --- the arithmetic -------------------------------------------------------------------

def asymmetric_params(lo, hi):
    """(scale, zero_point) for int8 activations covering [lo, hi], as TFLite's
    GetAsymmetricQuantizationParams: the range is widened to contain 0, all in float32."""
    lo, hi = np.float32(min(float(lo), 0.0)), np.float32(max(float(hi), 0.0))
    scale = np.float32((hi - lo) / np.float32(255.0))
    if not scale > 0:  # an all-zero tensor: any scale represents it; keep the kernels' multipliers sane
        return 1.0 / 255.0, -128
    zp_from_min = np.float32(-128.0) - lo / scale
    zp = int(np.clip(math.floor(abs(float(zp_from_min)) + 0.5) * (1 if zp_from_min >= 0 else -1), -128, 127))
    return float(scale), zp


def symmetric_weight_params(w, axis, per_channel=True):
    """(int8 weights, float32 scales) for symmetric weights, as TFLite's
    SymmetricPerChannelQuantization: scale = max|w| / 127, q = round(w * 127 / max|w|)."""
    w = np.asarray(w, dtype=np.float32)
    if per_channel:
        other = tuple(a for a in range(w.ndim) if a != axis)
        half_range = np.max(np.abs(w), axis=other).astype(np.float32)
    else:
        half_range = np.array([np.max(np.abs(w))], dtype=np.float32)
    scales = (half_range / np.float32(127.0)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(half_range > 0, np.float32(127.0) / half_range, 0).astype(np.float32)
    shape = [1] * w.ndim
    if per_channel:
        shape[axis] = -1
    q = _round_half_away(w * inv.reshape(shape))
    scales = np.where(scales > 0, scales, np.float32(1.0)).astype(np.float32)  # all-zero channel
    return np.clip(q, -127, 127).astype(np.int8), scales


def bias_params(b, input_scale, weight_scales, int64=False):
    """(int32 bias, float32 scales): scale = input_scale * weight_scale, q = round(b / scale);
    int64 for 16x8 (kept within the kernels' +-2^46)."""
    scales = (np.float32(input_scale) * np.asarray(weight_scales, dtype=np.float32)).astype(np.float32)
    inv = (1.0 / scales.astype(np.float64))
    q = _round_half_away(np.asarray(b, dtype=np.float64) * inv)
    if int64:
        return np.clip(q, -(1 << 46), 1 << 46).astype(np.int64), scales
    return np.clip(q, -(1 << 31), (1 << 31) - 1).astype(np.int32), scales


def symmetric_int16_params(lo, hi):
    """(scale, 0) for 16x8 int16 activations covering [lo, hi], as TFLite's converter:
    scale = max(|lo|, |hi|) / 32767."""
    scale = np.float32(max(abs(float(lo)), abs(float(hi)))) / np.float32(32767.0)
    return (float(scale), 0) if scale > 0 else (1.0 / 32767.0, 0)


def _round_half_away(x):
    x = np.asarray(x)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_values(values, scale, zero_point):
    """Float `values` as int8 with (scale, zero_point): round half away from zero in float32,
    as TFLite's QUANTIZE and converter do, then saturate."""
    q = _round_half_away(np.asarray(values, np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def fake_quantize(values, scale, zero_point):
    """Quantize then dequantize `values` with int8 (scale, zero_point)."""
    q = quantize_values(values, scale, zero_point).astype(np.float32)
    return ((q - zero_point) * np.float32(scale)).astype(np.float32)


def choose_range(values, method, percentile=DEFAULT_PERCENTILE):
    """(lo, hi) clip range for an activation's calibration values."""
    values = np.asarray(values, dtype=np.float32).ravel()
    if values.size == 0:
        return 0.0, 0.0
    lo, hi = float(values.min()), float(values.max())
    if method == "minmax":
        return lo, hi
    if method == "percentile":
        p = float(percentile)
        if not 50.0 < p <= 100.0:
            raise ModelError("percentile must be in (50, 100], got %r" % percentile)
        return float(np.percentile(values, 100.0 - p)), float(np.percentile(values, p))
    if method == "mse":
        return _mse_range(values, lo, hi)
    raise ModelError("unknown range method %r; choose one of %s" % (method, ", ".join(METHODS)))


def _mse_range(values, lo, hi, steps=40, max_values=16384):
    """The [a, b] inside [lo, hi] minimising the mean squared quantization error of `values`:
    a grid over both ends (fractions 1.0 down to 0.05), on at most `max_values` values."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo <= 0:
        return lo, hi
    if values.size > max_values:  # a fixed subsample that keeps both extremes
        keep = np.random.default_rng(0).choice(values.size, max_values - 2, replace=False)
        values = np.concatenate([values[keep], [lo, hi]]).astype(np.float32)
    fractions = np.linspace(1.0, 0.05, steps)
    his = (hi * fractions).astype(np.float32) if hi > 0 else np.zeros(1, np.float32)
    los = (lo * fractions).astype(np.float32) if lo < 0 else np.zeros(1, np.float32)
    best = (math.inf, lo, hi)
    v = values[None, :]
    for a in los:
        b = his[:, None]
        scale = ((b - a) / np.float32(255.0)).astype(np.float32)
        zp = np.clip(_round_half_away(np.float32(-128.0) - a / scale), -128, 127)
        q = np.clip(_round_half_away(v / scale) + zp, -128, 127)
        err = np.mean((v - (q - zp) * scale) ** 2, axis=1)
        k = int(np.argmin(err))
        if err[k] < best[0] * (1 - 1e-9):
            best = (float(err[k]), float(a), float(his[k]))
    return best[1], best[2]


# --- inputs: calibration samples and overrides ----------------------------------------

def _samples(graph, calibration, notes=None):
    """Normalise calibration data into a list of per-sample input lists (float32, input shapes);
    integer data for the float inputs (already quantized, most likely) is a note in `notes`."""
    if callable(calibration):
        calibration = calibration()
    inputs = [graph.tensors[i] for i in graph.inputs]
    samples = []
    for k, item in enumerate(calibration):
        if isinstance(item, dict):
            item = [item[t.name] for t in inputs]
        elif len(inputs) == 1 and not (isinstance(item, (list, tuple)) and len(item) == 1):
            item = [item]
        if len(item) != len(inputs):
            raise ModelError("calibration sample %d has %d arrays; the model has %d inputs"
                             % (k, len(item), len(inputs)))
        arrays = []
        for t, x in zip(inputs, item):
            x = np.asarray(x)
            if x.dtype.kind in "iub" and notes is not None and not notes:
                notes.append("calibration data is %s for the float input %r: calibrate with the "
                             "float inputs the model will see (int8 data was quantized already, "
                             "its ranges are wrong)" % (x.dtype, t.name))
            x = x.astype(np.float32)
            if x.size != int(np.prod(t.shape)):
                raise ModelError("calibration sample %d for input %r has shape %s; the model wants %s"
                                 % (k, t.name, x.shape, t.shape))
            arrays.append(x.reshape(t.shape))
        samples.append(arrays)
    if not samples:
        raise ModelError("the calibration set is empty; pass representative input samples")
    return samples


def load_calibration(path):
    """Calibration samples from a .npy (N samples of the one input) or .npz file
    (key 'x', the zoo's 'x_float', or one key per input named like the input tensor); for the CLI."""
    try:
        data = np.load(path)
    except (OSError, ValueError, EOFError) as e:
        raise ModelError("cannot read calibration data %s: %s" % (path, e)) from e
    if isinstance(data, np.ndarray):
        return data
    keys = list(data.keys())
    for key in ("x", "x_float"):
        if key in keys:
            return data[key]
    if len(keys) == 1:
        return data[keys[0]]
    arrays = {k: data[k] for k in keys}
    n = len(next(iter(arrays.values())))
    return [{k: v[i] for k, v in arrays.items()} for i in range(n)]


def load_overrides(path):
    """Per-layer overrides from a JSON or TOML file: {"layer": {"method": ..., "per_tensor": true}}."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ModelError("cannot read overrides %s: %s" % (path, e.strerror or e)) from e
    try:
        if os.fspath(path).endswith(".toml"):
            import tomllib  # Python 3.11+
            return tomllib.loads(raw.decode("utf-8"))
        return json.loads(raw.decode("utf-8"))
    except ImportError as e:
        raise ModelError("TOML overrides need Python 3.11+; write %s as JSON" % path) from e
    except ValueError as e:
        raise ModelError("overrides file %s is not valid: %s" % (path, e)) from e


def _layers(graph):
    """Quantization 'layers': (names, output tensor, op or None) for graph inputs and ops."""
    layers = [((graph.tensors[i].name,), i, None) for i in graph.inputs]
    for op in graph.ops:
        out = op.outputs[0]
        layers.append((("#%d" % op.index, graph.tensors[out].name), out, op))
    return layers


def _resolve_overrides(graph, overrides):
    """{output tensor index: settings} from {layer key: settings}; a key is '#<op index>',
    a tensor name, or a unique substring of one."""
    if not overrides:
        return {}
    if not isinstance(overrides, dict):
        raise ModelError("overrides must be a mapping {layer: {setting: value}}")
    layers = _layers(graph)
    resolved = {}
    for key, settings in overrides.items():
        exact = [l for l in layers if key in l[0]]
        found = exact or [l for l in layers if key in l[0][-1]]
        if len(found) != 1:
            names = "; ".join("%s %s" % (n[0], n[-1]) if len(n) > 1 else n[0] for n, _, _ in layers)
            raise ModelError("override %r matches %s layers; use '#<op index>' or a tensor name. Layers: %s"
                             % (key, len(found) or "no", names))
        names, out, op = found[0]
        if not isinstance(settings, dict) or set(settings) - set(_OVERRIDE_KEYS):
            raise ModelError("override %r: settings must be a table with keys from %s, got %r"
                             % (key, ", ".join(_OVERRIDE_KEYS), settings))
        kind = op.kind if op is not None else "input"
        if "method" in settings and settings["method"] not in METHODS:
            raise ModelError("override %r: method %r is not one of %s"
                             % (key, settings["method"], ", ".join(METHODS)))
        if settings.get("activations", "int8") not in ACTIVATIONS:
            raise ModelError("override %r: activations %r is not one of %s"
                             % (key, settings["activations"], ", ".join(ACTIVATIONS)))
        if settings.get("per_tensor") and kind not in _WEIGHTED:
            raise ModelError("override %r: per_tensor applies to weights; %s has none" % (key, kind))
        if ({"method", "percentile", "range"} & set(settings)) and kind in _SAME_AS_INPUT + tuple(_FIXED_OUTPUT):
            raise ModelError("override %r: the output quantization of %s is fixed by the int8 spec"
                             % (key, kind))
        resolved[out] = dict(settings)
    return resolved


# --- checks -----------------------------------------------------------------------------

def is_float_model(graph):
    """True for a float model (float32 weights): one that needs quantizing before it compiles."""
    return any(t.is_const and np.dtype(t.dtype) == FLOAT32 for t in graph.tensors)


def check_float(graph):
    """Raise UnsupportedOpError naming every op quantize cannot handle, with its index."""
    problems = []
    for op in graph.ops:
        if op.kind not in QUANTIZABLE:
            problems.append((op.index, op.kind, "cannot quantize this op"))
            continue
        acts = [i for i in op.inputs if i >= 0 and not graph.tensors[i].is_const]
        floats = [i for i in acts + list(op.outputs) if np.dtype(graph.tensors[i].dtype) != FLOAT32]
        if floats:
            problems.append((op.index, op.kind, "tensor %r is %s, not float32; is the model already "
                             "quantized?" % (graph.tensors[floats[0]].name, graph.tensors[floats[0]].dtype)))
        if op.kind in _WEIGHTED:
            w_pos, b_pos, _ = _WEIGHTED[op.kind]
            w = graph.tensors[op.inputs[w_pos]] if len(op.inputs) > w_pos and op.inputs[w_pos] >= 0 else None
            if w is None or not w.is_const or np.dtype(w.dtype) != FLOAT32:
                problems.append((op.index, op.kind, "weights must be a constant float32 tensor"))
            b = op.inputs[b_pos] if len(op.inputs) > b_pos else -1
            if b >= 0 and (not graph.tensors[b].is_const or np.dtype(graph.tensors[b].dtype) != FLOAT32):
                problems.append((op.index, op.kind, "bias must be a constant float32 tensor"))
    for i in graph.inputs + graph.outputs:
        if np.dtype(graph.tensors[i].dtype) != FLOAT32:
            problems.append((-1, "io", "model input/output %r is %s; quantize takes float32 models"
                             % (graph.tensors[i].name, graph.tensors[i].dtype)))
    if problems:
        raise UnsupportedOpError(problems, graph.name, "Quantizable ops: %s. To go on: quantize it with "
                                 "TensorFlow's converter (full int8) and compile that .tflite; see "
                                 "docs/quantization.md." % ", ".join(QUANTIZABLE))


# --- calibration ------------------------------------------------------------------------

def _activations(graph):
    """Indices of the float activation tensors whose ranges calibration must find."""
    acts = list(graph.inputs)
    for op in graph.ops:
        acts += [t for t in op.outputs if t not in acts]
    return acts


def calibrate(graph, samples, seed=0):
    """Run the float graph in LiteRT over `samples`; returns {tensor: [per-sample value arrays]}."""
    rng = np.random.default_rng(seed)
    acts = _activations(graph)
    values = {t: [] for t in acts}
    model = tflite_writer.write(graph)
    for found in reference.litert_all_tensors(model, samples, acts):
        for t in acts:
            v = found[t].astype(np.float32).ravel()
            if v.size > MAX_VALUES_PER_SAMPLE:  # keep the extremes, subsample the rest
                keep = rng.choice(v.size, MAX_VALUES_PER_SAMPLE - 2, replace=False)
                v = np.concatenate([v[keep], [v.min(), v.max()]])
            values[t].append(v)
    return values


def _stability(per_sample, method, percentile):
    """How far the ranges of the two calibration halves differ, as a fraction of the full range."""
    n = len(per_sample)
    if n < 2:
        return 0.0
    full = choose_range(np.concatenate(per_sample), method, percentile)
    a = choose_range(np.concatenate(per_sample[:n // 2]), method, percentile)
    b = choose_range(np.concatenate(per_sample[n // 2:]), method, percentile)
    width = max(full[1], 0.0) - min(full[0], 0.0)
    if width <= 0:
        return 0.0
    return max(abs(a[0] - b[0]), abs(a[1] - b[1])) / width


# --- the pass ---------------------------------------------------------------------------

def quantize(graph, calibration, method=DEFAULT_METHOD, per_channel=True, int8_io=False,
             overrides=None, percentile=DEFAULT_PERCENTILE, activations="int8"):
    """Quantize a float Graph into an int8 Graph for compiler.compile_graph.

    calibration: an iterable of input samples (arrays shaped like the model
    input, with or without its batch-1 axis; a list/tuple or {name: array} per
    sample for multi-input models), or a callable returning one (like TF's
    representative_dataset). method: "percentile" (default) | "minmax" | "mse" for the
    activation ranges. per_channel: per-output-channel weight scales.
    int8_io: int8 model inputs/outputs instead of float32 ones behind
    QUANTIZE/DEQUANTIZE. overrides: {layer: {"method", "percentile",
    "per_tensor", "range": [lo, hi], "activations"}}, see load_overrides. activations: "int8",
    or "int16" for 16x8 (int16 activations with zero point 0, int8 weights, int64 bias; int8_io
    then means int16 inputs and outputs); a layer's "activations" override picks the other type
    for it alone (QUANTIZE ops requantize between the two where they meet).
    Calibration problems are emitted as CalibrationWarning.
    """
    graph_q, _, notes = _quantize(graph, calibration, method, per_channel, int8_io, overrides,
                                  percentile, activations)
    for note in notes:
        warnings.warn(note, CalibrationWarning, stacklevel=2)
    return graph_q


def quantize_with_report(graph, calibration, method=DEFAULT_METHOD, per_channel=True, int8_io=False,
                         overrides=None, percentile=DEFAULT_PERCENTILE, activations="int8"):
    """quantize() plus the per-layer SQNR report on the calibration data; warnings are
    returned in the result, not emitted. What `npu compile --calib` calls."""
    graph_q, info, notes = _quantize(graph, calibration, method, per_channel, int8_io, overrides,
                                     percentile, activations)
    report = layer_report(info["float_graph"], graph_q, info["samples"], info)
    return QuantizationResult(graph_q, report, notes)


def _quantize(graph, calibration, method, per_channel, int8_io, overrides, percentile,
              activations="int8"):
    if method not in METHODS:
        raise ModelError("unknown range method %r; choose one of %s" % (method, ", ".join(METHODS)))
    if activations not in ACTIVATIONS:
        raise ModelError("unknown activation type %r; choose one of %s"
                         % (activations, ", ".join(ACTIVATIONS)))
    # Shape arithmetic (Keras Flatten's SHAPE, STRIDED_SLICE, PACK) folds to constants as on
    # the int8 path: int32 tensors, nothing to calibrate.
    graph = rewrite.simplify(graph, (rewrite.fold_constants, rewrite.prune))
    check_float(graph)
    settings = _resolve_overrides(graph, overrides)

    def wide(t):
        """Whether the layer writing tensor t (a model input or an op's output) is 16x8: the
        activations argument, or the layer's own "activations" override."""
        return settings.get(t, {}).get("activations", activations) == "int16"

    lacking = sorted({op.kind for op in graph.ops if op.kind in ops.QUANTIZABLE
                      and not ops.OPS[op.kind].int16 and wide(op.outputs[0])})
    if lacking:
        raise ModelError("%s: %s cannot be quantized to 16x8 (TFLite Micro has no int16 kernel "
                         "for it); quantize to int8 (drop --activations int16), or keep those "
                         "layers int8 with an override {\"#<op index>\": {\"activations\": "
                         "\"int8\"}}" % (graph.name, ", ".join(lacking)))
    notes = []
    samples = _samples(graph, calibration, notes)
    if len(samples) < MIN_CALIBRATION_SAMPLES:
        notes.append("calibration set has %d samples (< %d): activation ranges may not represent "
                     "real inputs; use a few hundred samples from the training data"
                     % (len(samples), MIN_CALIBRATION_SAMPLES))
    values = calibrate(graph, samples)

    g = Graph([copy.copy(t) for t in graph.tensors], [copy.deepcopy(op) for op in graph.ops],
              list(graph.inputs), list(graph.outputs), graph.name)
    info = {"samples": samples, "values": values, "layers": {}, "float_graph": graph}

    def set_activation(t, scale, zp, int16):
        tensor = g.tensors[t]
        tensor.dtype = INT16 if int16 else INT8
        tensor.scales = np.array([scale], np.float32)
        tensor.zero_points = np.array([zp], np.int64)
        tensor.quantized_dim = 0

    def calibrated(t, kind):
        s = settings.get(t, {})
        m = s.get("method", method)
        p = s.get("percentile", percentile)
        if "range" in s:
            lo, hi = (float(v) for v in s["range"])
            m = "range"
        else:
            lo, hi = choose_range(np.concatenate(values[t]), m, p)
            drift = _stability(values[t], m, p)
            if drift > UNSTABLE_RANGE:
                notes.append("%s %r: activation range differs by %.0f%% between the two halves of the "
                             "calibration set; use more (or more varied) calibration data"
                             % (kind, graph.tensors[t].name, 100 * drift))
        scale, zp = symmetric_int16_params(lo, hi) if wide(t) else asymmetric_params(lo, hi)
        set_activation(t, scale, zp, wide(t))
        info["layers"][t] = {"method": m, "range": [float(lo), float(hi)]}

    bridges = {}  # (tensor, int16) -> the tensor requantized to the other activation type

    def bridge(op, int16):
        """QUANTIZE ops ahead of `op` for its activation inputs of the other type (a model
        mixing int8 and 16x8 layers), their ranges from calibration; returns them."""
        added = []
        for pos, i in enumerate(op.inputs):
            t = g.tensors[i] if i >= 0 else None
            if t is None or t.is_const or t.scales is None or (np.dtype(t.dtype) == INT16) == int16:
                continue
            if (i, int16) not in bridges:
                lo, hi = choose_range(np.concatenate(values[i]), method, percentile)
                scale, zp = symmetric_int16_params(lo, hi) if int16 else asymmetric_params(lo, hi)
                g.tensors.append(Tensor(t.name + ("_int16" if int16 else "_int8"), t.shape,
                                        INT16 if int16 else INT8, np.array([scale], np.float32),
                                        np.array([zp], np.int64), 0))
                bridges[(i, int16)] = len(g.tensors) - 1
                added.append(Op("QUANTIZE", [i], [bridges[(i, int16)]], {}, -1))
            op.inputs[pos] = bridges[(i, int16)]
        return added

    for t in graph.inputs:
        calibrated(t, "input")
    used = set()
    ordered = []
    for op in g.ops:
        out = op.outputs[0]
        ordered += bridge(op, wide(out)) + [op]
        if op.kind in _SAME_AS_INPUT:
            src = g.tensors[op.inputs[0]]
            set_activation(out, src.scale, src.zero_point, wide(out))
            info["layers"][out] = {"method": "same as input", "range": None}
            continue
        if op.kind in _FIXED_OUTPUT:
            set_activation(out, *(ops.FIXED_OUTPUT_S16 if wide(out) else _FIXED_OUTPUT[op.kind]),
                           wide(out))
            info["layers"][out] = {"method": "fixed by spec", "range": None}
            continue
        calibrated(out, op.kind)
        if op.kind in _CALIBRATED:
            for pos, i in enumerate(op.inputs):
                if i >= 0 and g.tensors[i].is_const and np.dtype(g.tensors[i].dtype) == FLOAT32:
                    _constant_operand(g, _own(g, op, pos, used), wide(out))
            continue
        # weights and bias
        w_pos, b_pos, axis = _WEIGHTED[op.kind]
        pc = per_channel and not settings.get(out, {}).get("per_tensor", False)
        w_index = _own(g, op, w_pos, used)
        w = g.tensors[w_index]
        q, w_scales = symmetric_weight_params(w.data, axis, pc)
        g.tensors[w_index] = Tensor(w.name, w.shape, INT8, w_scales, np.zeros(len(w_scales), np.int64),
                                    axis if pc else 0, q)
        info["layers"][out]["weights"] = "per-channel" if pc else "per-tensor"
        if len(op.inputs) > b_pos and op.inputs[b_pos] >= 0:
            b_index = _own(g, op, b_pos, used)
            b = g.tensors[b_index]
            in_scale = g.tensors[op.inputs[0]].scale
            qb, b_scales = bias_params(b.data, in_scale, w_scales, int64=wide(out))
            g.tensors[b_index] = Tensor(b.name, b.shape, qb.dtype, b_scales,
                                        np.zeros(len(b_scales), np.int64), 0, qb)
    g.ops = ordered
    if not int8_io:
        _float_edges(g)
    return g, info, notes


def _own(g, op, pos, used):
    """The tensor at op.inputs[pos], copied first if another op already quantized it."""
    t = op.inputs[pos]
    if t in used:
        g.tensors.append(copy.copy(g.tensors[t]))
        t = op.inputs[pos] = len(g.tensors) - 1
    used.add(t)
    return t


def _constant_operand(g, t, int16=False):
    """A constant float operand (of ADD, MUL...) as per-tensor asymmetric int8 over its values
    (symmetric int16 for a 16x8 op)."""
    c = g.tensors[t]
    lo, hi = np.min(c.data), np.max(c.data)
    if int16:
        scale, zp = symmetric_int16_params(lo, hi)
        q = np.clip(_round_half_away(np.asarray(c.data, np.float32) / np.float32(scale)),
                    -32768, 32767).astype(np.int16)
        g.tensors[t] = Tensor(c.name, c.shape, INT16, np.array([scale], np.float32),
                              np.array([0], np.int64), 0, q)
        return
    scale, zp = asymmetric_params(lo, hi)
    g.tensors[t] = Tensor(c.name, c.shape, INT8, np.array([scale], np.float32), np.array([zp], np.int64),
                          0, quantize_values(c.data, scale, zp))


def _float_edges(g):
    """Keep float32 model inputs/outputs: QUANTIZE after each input, DEQUANTIZE before each output."""
    head, tail = [], []
    for k, t in enumerate(g.inputs):
        q = copy.copy(g.tensors[t])
        q.name = q.name + "_int8"
        g.tensors.append(q)
        qi = len(g.tensors) - 1
        for op in g.ops:
            op.inputs = [qi if i == t else i for i in op.inputs]
        g.tensors[t] = _float_tensor(g.tensors[t])
        head.append(Op("QUANTIZE", [t], [qi], {}, -1))
    for k, t in enumerate(g.outputs):
        f = _float_tensor(g.tensors[t])
        g.tensors[t] = copy.copy(g.tensors[t])
        g.tensors[t].name = f.name + "_int8"
        g.tensors.append(f)  # the float output keeps the original name
        g.outputs[k] = len(g.tensors) - 1
        tail.append(Op("DEQUANTIZE", [t], [g.outputs[k]], {}, -1))
    g.ops = head + g.ops + tail  # the float model's ops keep their index; the edges have -1


def _float_tensor(t):
    return Tensor(t.name, t.shape, FLOAT32)


# --- the report -------------------------------------------------------------------------

def sqnr_db(reference_values, values):
    """Signal-to-quantization-noise ratio in dB; None when the two are identical."""
    ref = np.asarray(reference_values, np.float64)
    noise = float(np.sum((ref - np.asarray(values, np.float64)) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0.0:
        return None
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def layer_report(float_graph, int8_graph, calibration, info=None):
    """Per-layer SQNR (dB) of the int8 graph's layer outputs against the float graph's, over
    `calibration` (run in LiteRT, errors accumulate through the network), worst first.

    Each row: index, op, name, sqnr_db (None = exact), scale, zero_point, method, range,
    clipped_pct (calibration values outside the int8 range), weights.
    """
    samples = calibration if info is not None else _samples(float_graph, calibration)
    info = info or {"layers": {}}
    # tensors present in both graphs keep their index; the int8 graph only appends
    layers = [(op, op.outputs[0]) for op in int8_graph.ops if op.kind not in ("QUANTIZE", "DEQUANTIZE")]
    wanted = [t for _, t in layers]
    f_runs = reference.litert_all_tensors(tflite_writer.write(float_graph), samples, wanted)
    q_runs = reference.litert_all_tensors(tflite_writer.write(int8_graph),
                                          _int8_inputs(int8_graph, samples), wanted)
    ref = {t: [] for t in wanted}
    got = {t: [] for t in wanted}
    for f, q in zip(f_runs, q_runs):
        for t in wanted:
            tq = int8_graph.tensors[t]
            ref[t].append(f[t].astype(np.float32).ravel())
            got[t].append(((q[t].astype(np.float32) - tq.zero_point) * np.float32(tq.scale)).ravel())
    rows = []
    for op, t in layers:
        tq = int8_graph.tensors[t]
        r, v = np.concatenate(ref[t]), np.concatenate(got[t])
        limits = np.iinfo(np.dtype(tq.dtype))  # int8, or int16 for 16x8
        lo, hi = (limits.min - tq.zero_point) * tq.scale, (limits.max - tq.zero_point) * tq.scale
        meta = info["layers"].get(t, {})
        s = sqnr_db(r, v)
        rows.append({
            "index": op.index, "op": op.kind, "name": float_graph.tensors[t].name,
            "sqnr_db": None if s is None else round(s, 2),
            "scale": tq.scale, "zero_point": tq.zero_point,
            "method": meta.get("method"), "range": meta.get("range"),
            "clipped_pct": round(100.0 * float(np.mean((r < lo - tq.scale / 2) | (r > hi + tq.scale / 2))), 3),
            "weights": meta.get("weights"),
        })
    rows.sort(key=lambda row: math.inf if row["sqnr_db"] is None else row["sqnr_db"])
    return rows


def _int8_inputs(graph, samples):
    """The float samples as the graph takes them: quantized where its inputs are int8 (--int8-io)."""
    out = []
    for arrays in samples:
        fed = []
        for i, x in zip(graph.inputs, arrays):
            t = graph.tensors[i]
            if np.dtype(t.dtype) == np.int8:
                x = quantize_values(x, t.scale, t.zero_point)
            elif np.dtype(t.dtype) == INT16:  # 16x8 with int16 inputs
                x = np.clip(_round_half_away(np.asarray(x, np.float32) / np.float32(t.scale)),
                            -32768, 32767).astype(np.int16)
            fed.append(x)
        out.append(fed)
    return out


def format_report(rows, warnings_=()):
    """The report as a text table for the CLI."""
    lines = ["%-4s %-18s %9s %11s %5s %-14s %8s  %s"
             % ("op", "kind", "SQNR dB", "scale", "zp", "range method", "clip %", "layer")]
    for r in rows:
        sqnr = "exact" if r["sqnr_db"] is None else "%.2f" % r["sqnr_db"]
        name = r["name"] if len(r["name"]) <= 60 else "..." + r["name"][-57:]
        lines.append("%-4s %-18s %9s %11.6g %5d %-14s %8.3f  %s"
                     % ("#%d" % r["index"], r["op"], sqnr, r["scale"], r["zero_point"],
                        r["method"] or "", r["clipped_pct"], name))
    lines += ["warning: " + w for w in warnings_]
    return "\n".join(lines)
