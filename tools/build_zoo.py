#!/usr/bin/env python3
"""Build the npu-sdk model zoo.

Usage:
    python tools/build_zoo.py [--out model_zoo] [--only NAME ...]

Models: digits_mlp (sklearn digits MLP), kws_dscnn (keyword-spotting DS-CNN),
anomaly_ae (vibration-spectrum autoencoder), vww_mobilenet (MobileNetV1-style
person detector).

Trains small Keras models on data that ships inside Python packages or is
generated procedurally from fixed seeds (no network access needed), converts
them to TFLite (float32, full-int8 and int8-with-float-I/O), saves sample inputs and the held-out test split, and
writes a model card per model plus an index ``<out>/README.md``. Every
figure in the cards is measured by this script.

Needs the optional ``zoo`` extra: ``pip install -e .[zoo]``
(tensorflow-cpu, scikit-learn). ``ai-edge-litert`` (a core dependency) is
used to evaluate the converted models; TF's own interpreter is the fallback.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path

import numpy as np

from npu_sdk import ops

SEED = 0
REBUILD_CMD = "python tools/build_zoo.py --out model_zoo"

# Must be set before TensorFlow is imported to take full effect.
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONHASHSEED", str(SEED))


def _import_tf():
    """Import TensorFlow lazily, with an actionable message if it is missing."""
    try:
        import tensorflow as tf  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on environment
        sys.exit(
            "build_zoo.py needs TensorFlow and scikit-learn, which are optional.\n"
            "Install them with:  pip install -e .[zoo]\n"
            f"(import error: {exc})"
        )
    return tf


def _import_sklearn():
    try:
        import sklearn  # noqa: F401, PLC0415
    except ImportError as exc:  # pragma: no cover
        sys.exit(
            "build_zoo.py needs scikit-learn, which is optional.\n"
            "Install it with:  pip install -e .[zoo]\n"
            f"(import error: {exc})"
        )


def _configure_tf(tf) -> None:
    """Single-threaded, deterministic ops. Must run before TF executes anything."""
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    try:
        tf.config.experimental.enable_op_determinism()
    except AttributeError:  # pragma: no cover - very old TF
        pass


def _seed_everything(tf) -> None:
    tf.keras.utils.set_random_seed(SEED)  # python, numpy and TF seeds


# --------------------------------------------------------------------------
# TFLite helpers (interpreter and flatbuffer inspection)
# --------------------------------------------------------------------------


def _make_interpreter(model_bytes: bytes):
    """Return (interpreter, runtime_name); prefers ai-edge-litert."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

        name = "ai_edge_litert.interpreter.Interpreter"
    except ImportError:
        import tensorflow as tf  # noqa: PLC0415

        Interpreter = tf.lite.Interpreter
        name = "tf.lite.Interpreter"
    interp = Interpreter(model_content=model_bytes, num_threads=1)
    interp.allocate_tensors()
    return interp, name


def tflite_ops(model_bytes: bytes) -> list[str]:
    """Operator names of subgraph 0, in execution order."""
    try:
        from ai_edge_litert import schema_py_generated as schema  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        from tensorflow.lite.python import schema_py_generated as schema  # noqa: PLC0415

    model = schema.Model.GetRootAsModel(model_bytes, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        # builtin_code (int32) supersedes deprecated_builtin_code (int8).
        codes.append(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()))
    sg = model.Subgraphs(0)
    return [names.get(codes[sg.Operators(i).OpcodeIndex()], "?") for i in range(sg.OperatorsLength())]


def quantize_input(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8 with round-half-away-from-zero, then clip (TFLite QUANTIZE)."""
    q = x.astype(np.float64) / scale
    q = np.sign(q) * np.floor(np.abs(q) + 0.5) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def evaluate_tflite(model_bytes: bytes, x: np.ndarray, y: np.ndarray) -> tuple[float, str]:
    """Top-1 accuracy over (x, y), one sample at a time (model batch is 1)."""
    interp, runtime = _make_interpreter(model_bytes)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    if inp["dtype"] == np.int8:
        scale, zp = inp["quantization"]
        xs = quantize_input(x, scale, zp)
    else:
        xs = x.astype(np.float32)
    correct = 0
    for i in range(len(x)):
        interp.set_tensor(inp["index"], xs[i : i + 1])
        interp.invoke()
        correct += int(np.argmax(interp.get_tensor(out["index"])[0]) == y[i])
    return correct / len(x), runtime


# --------------------------------------------------------------------------
# digits_mlp
# --------------------------------------------------------------------------

DIGITS_EPOCHS = 120
DIGITS_LAYERS = (32, 16, 10)


def load_digits_split():
    """sklearn digits (bundled, offline), scaled to [0, 1], stratified 80/20."""
    from sklearn.datasets import load_digits  # noqa: PLC0415
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)  # (1797, 8, 8)
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=SEED, shuffle=True
    )
    return x, x_tr, x_te, y_tr, y_te


def build_digits_model(tf):
    keras = tf.keras
    return keras.Sequential(
        [
            keras.Input(shape=(8, 8), dtype="float32", name="pixels"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(DIGITS_LAYERS[0], activation="relu", name="fc1"),
            keras.layers.Dense(DIGITS_LAYERS[1], activation="relu", name="fc2"),
            keras.layers.Dense(DIGITS_LAYERS[2], activation="softmax", name="fc3"),
        ],
        name="digits_mlp",
    )


def convert(tf, model, *, int8: bool, int8_io: bool = False, rep_data=None) -> bytes:
    """Convert with a fixed batch of 1 so Flatten becomes one constant RESHAPE.

    The trained model is rebuilt with ``Input(batch_size=1)`` and its weights
    copied over, so the converter sees static shapes everywhere.
    """
    fixed = tf.keras.Sequential(
        [tf.keras.Input(shape=(8, 8), batch_size=1, dtype="float32", name="pixels")]
        + [tf.keras.layers.deserialize(tf.keras.layers.serialize(l)) for l in model.layers],
        name=f"{model.name}_b1",
    )
    fixed.set_weights(model.get_weights())
    conv = tf.lite.TFLiteConverter.from_keras_model(fixed)
    if int8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]

        def representative():
            for s in rep_data:
                yield [s[None].astype(np.float32)]

        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        else:
            conv.inference_input_type = tf.float32
            conv.inference_output_type = tf.float32
    # The converter exports a temporary SavedModel and prints about it on
    # stdout; keep our own output readable (errors still raise).
    with contextlib.redirect_stdout(io.StringIO()):
        return conv.convert()


def _fmt_size(n: int) -> str:
    return f"{n:,} B ({n / 1024:.1f} KiB)"


def build_digits_mlp(tf, out_dir: Path) -> dict:
    mdir = out_dir / "digits_mlp"
    mdir.mkdir(parents=True, exist_ok=True)

    x_all, x_tr, x_te, y_tr, y_te = load_digits_split()
    print(f"[digits_mlp] data: {len(x_all)} images, train {len(x_tr)}, test {len(x_te)}")

    _seed_everything(tf)
    model = build_digits_model(tf)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(1e-3),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    model.fit(x_tr, y_tr, epochs=DIGITS_EPOCHS, batch_size=32, shuffle=True, verbose=0)
    _, keras_acc = model.evaluate(x_te, y_te, verbose=0)
    print(f"[digits_mlp] keras test accuracy: {keras_acc:.4f}")
    if keras_acc < 0.95:
        sys.exit(f"[digits_mlp] keras test accuracy {keras_acc:.4f} < 0.95; refusing to publish")

    rep = x_tr[:200]
    blobs = {
        "float.tflite": convert(tf, model, int8=False),
        "int8.tflite": convert(tf, model, int8=True, int8_io=True, rep_data=rep),
        "int8_float_io.tflite": convert(tf, model, int8=True, int8_io=False, rep_data=rep),
    }
    expected = {
        "float.tflite": ["RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED", "FULLY_CONNECTED", "SOFTMAX"],
        "int8.tflite": ["RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED", "FULLY_CONNECTED", "SOFTMAX"],
        "int8_float_io.tflite": [
            "QUANTIZE", "RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED",
            "FULLY_CONNECTED", "SOFTMAX", "DEQUANTIZE",
        ],
    }
    ops = {}
    for name, blob in blobs.items():
        ops[name] = tflite_ops(blob)
        print(f"[digits_mlp] {name}: ops = {ops[name]}")
        if ops[name] != expected[name]:
            sys.exit(f"[digits_mlp] {name}: unexpected operators {ops[name]}, want {expected[name]}")
        (mdir / name).write_bytes(blob)

    # Sample inputs, quantized with int8.tflite's own input parameters.
    interp, _ = _make_interpreter(blobs["int8.tflite"])
    in_det = interp.get_input_details()[0]
    out_det = interp.get_output_details()[0]
    in_scale, in_zp = in_det["quantization"]
    out_scale, out_zp = out_det["quantization"]
    x_s = x_te[:16].reshape(16, 1, 8, 8).astype(np.float32)
    np.savez_compressed(
        mdir / "samples.npz",
        x_float=x_s,
        x_int8=quantize_input(x_s, in_scale, in_zp),
        y=y_te[:16].astype(np.int64),
    )
    np.savez_compressed(mdir / "test.npz", x=x_te.astype(np.float32), y=y_te.astype(np.int64))

    acc = {}
    runtime = "?"
    for name in blobs:
        acc[name], runtime = evaluate_tflite(blobs[name], x_te, y_te)
        print(f"[digits_mlp] {name}: test accuracy {acc[name]:.4f} ({runtime})")

    # Parameter count and MACs (fully-connected layers: in * out each).
    dense = [l for l in model.layers if isinstance(l, tf.keras.layers.Dense)]
    layer_rows = []
    macs = 0
    for l in dense:
        w, b = l.get_weights()
        macs += w.shape[0] * w.shape[1]
        layer_rows.append((l.name, w.shape[0], w.shape[1], w.size + b.size))
    params = int(model.count_params())

    files = {
        p.name: p.stat().st_size
        for p in sorted(mdir.iterdir())
        if p.is_file() and p.name != "README.md"
    }
    write_digits_card(
        mdir, n_all=len(x_all), n_tr=len(x_tr), n_te=len(x_te), layer_rows=layer_rows,
        macs=macs, params=params, files=files, acc=acc, keras_acc=keras_acc, ops=ops,
        runtime=runtime, in_q=(in_scale, in_zp), out_q=(out_scale, out_zp), tf_version=tf.__version__,
    )
    total = sum(p.stat().st_size for p in mdir.iterdir() if p.is_file())
    print(f"[digits_mlp] total size {_fmt_size(total)}")
    return {
        "name": "digits_mlp",
        "task": "handwritten digit classification (8x8 grayscale, 10 classes)",
        "files": list(files) + ["README.md"],
    }


def write_digits_card(mdir: Path, **m) -> None:
    ops_lines = "\n".join(f"| `{n}` | {' → '.join(o)} |" for n, o in m["ops"].items())
    size_lines = "\n".join(f"| `{n}` | {_fmt_size(s)} |" for n, s in m["files"].items())
    layer_lines = "\n".join(
        f"| {n} | Dense {i} → {o} | {p} | {i * o} |" for n, i, o, p in m["layer_rows"]
    )
    acc = m["acc"]
    text = f"""# digits_mlp

A tiny multilayer perceptron that classifies 8x8 handwritten digits. It is the
first model of the npu-sdk model zoo: small enough to run on any board, and
made only of operators the SDK supports (RESHAPE, FULLY_CONNECTED, SOFTMAX).

## Task

10-class classification of 8x8 grayscale images of the digits 0–9. The model
outputs a probability per class (softmax); the prediction is the argmax.

## Data

scikit-learn's bundled *digits* dataset (`sklearn.datasets.load_digits`, a copy
of the UCI ML hand-written digits test set): {m["n_all"]} images of 8x8 pixels
with integer intensities 0–16. Inputs are scaled to `[0, 1]` as
`float32(pixels / 16)`. Split: stratified 80/20 with
`train_test_split(test_size=0.2, stratify=y, random_state={SEED})`, giving
{m["n_tr"]} training and {m["n_te"]} test images. The full test split is in
`test.npz` (`x`: ({m["n_te"]}, 8, 8) float32, `y`: ({m["n_te"]},) int64).

## Architecture

Input `(1, 8, 8)` float32 (batch fixed to 1) → Flatten (one RESHAPE to
`(1, 64)`) → Dense 32 + ReLU → Dense 16 + ReLU → Dense 10 → Softmax.
ReLUs are fused into the FULLY_CONNECTED operators.

| layer | shape | parameters | MACs |
|---|---|---|---|
{layer_lines}
| **total** | | **{m["params"]}** | **{m["macs"]}** |

MACs per inference: **{m["macs"]}** (fully-connected multiply-accumulates;
bias adds, ReLU and softmax not counted). Parameters: **{m["params"]}**.

Training: Adam (lr 1e-3), sparse categorical cross-entropy, {DIGITS_EPOCHS}
epochs, batch 32, seed {SEED}, single-threaded deterministic TF ops
(TensorFlow {m["tf_version"]}). Keras float test accuracy: {m["keras_acc"]:.4f}.

## Files

| file | size |
|---|---|
{size_lines}

- `float.tflite` — float32 model.
- `int8.tflite` — full-integer post-training quantization (200 training
  samples as representative dataset), int8 input and output.
  Input quantization: scale {m["in_q"][0]:.9g}, zero point {m["in_q"][1]};
  output quantization: scale {m["out_q"][0]:.9g}, zero point {m["out_q"][1]}.
- `int8_float_io.tflite` — the same int8 model with float32 input/output
  (QUANTIZE at the input edge, DEQUANTIZE at the output edge).
- `samples.npz` — the first 16 test images: `x_float` (16, 1, 8, 8) float32,
  `x_int8` (16, 1, 8, 8) int8 (quantized with `int8.tflite`'s input scale and
  zero point, round half away from zero, then clipped to [-128, 127]),
  `y` (16,) int64 labels.
- `test.npz` — the whole held-out test split (see Data).

## Operators

| file | operators (execution order) |
|---|---|
{ops_lines}

## Accuracy

Top-1 accuracy on the whole test split ({m["n_te"]} images), measured with
`{m["runtime"]}`:

| model | test accuracy |
|---|---|
| `float.tflite` | {acc["float.tflite"]:.4f} ({round(acc["float.tflite"] * m["n_te"])}/{m["n_te"]}) |
| `int8.tflite` | {acc["int8.tflite"]:.4f} ({round(acc["int8.tflite"] * m["n_te"])}/{m["n_te"]}) |
| `int8_float_io.tflite` | {acc["int8_float_io.tflite"]:.4f} ({round(acc["int8_float_io.tflite"] * m["n_te"])}/{m["n_te"]}) |

## Rebuild

```
pip install -e .[zoo]
{REBUILD_CMD}
```

This card is generated by `tools/build_zoo.py`; every figure above is measured
by that script. Retraining is seeded, but bit-identical weights across
TensorFlow versions or CPUs are not guaranteed.
"""
    (mdir / "README.md").write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------
# Shared helpers for the procedurally generated models below
# --------------------------------------------------------------------------

# Operators the npu-sdk compiler lowers (its op registry); every published model must use only these.
SDK_OPS = frozenset(ops.SUPPORTED)
N_SAMPLES = 16  # inputs in samples.npz
N_REP = 200  # representative (calibration) samples for post-training quantization


def _fit(tf, build, x, y, *, epochs: int, lr: float, loss, metrics=None, batch: int = 32):
    """Seeded training of ``build(tf, None)`` with Adam and a cosine learning-rate decay."""
    _seed_everything(tf)
    model = build(tf, None)
    steps = epochs * int(np.ceil(len(x) / batch))
    model.compile(
        optimizer=tf.keras.optimizers.Adam(tf.keras.optimizers.schedules.CosineDecay(lr, steps)),
        loss=loss,
        metrics=metrics or [],
    )
    model.fit(x, y, epochs=epochs, batch_size=batch, shuffle=True, verbose=0)
    return model


def convert_b1(tf, build, model, *, int8: bool, int8_io: bool = False, rep_data=None) -> bytes:
    """Convert ``model`` rebuilt by ``build(tf, 1)`` (batch fixed to 1, static shapes).

    BatchNormalization is folded into the preceding convolution and ReLU/ReLU6
    are fused into it by the converter; int8 is TF's full-integer PTQ.
    """
    fixed = build(tf, 1)
    fixed.set_weights(model.get_weights())
    conv = tf.lite.TFLiteConverter.from_keras_model(fixed)
    if int8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]

        def representative():
            for s in rep_data:
                yield [s[None].astype(np.float32)]

        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8 if int8_io else tf.float32
        conv.inference_output_type = tf.int8 if int8_io else tf.float32
    with contextlib.redirect_stdout(io.StringIO()):
        return conv.convert()


def fit_classifier(tf, name, build, x_tr, y_tr, x_te, y_te, *, epochs: int):
    """``_fit`` a softmax classifier; refuse to publish below 0.85 Keras test accuracy.
    Returns (model, Keras test accuracy)."""
    model = _fit(tf, build, x_tr, y_tr, epochs=epochs, lr=3e-3,
                 loss=tf.keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    _, keras_acc = model.evaluate(x_te, y_te, verbose=0)
    print(f"[{name}] keras test accuracy: {keras_acc:.4f}")
    if keras_acc < 0.85:
        sys.exit(f"[{name}] keras test accuracy {keras_acc:.4f} < 0.85; refusing to publish")
    return model, keras_acc


def publish_tflite(tf, name, mdir: Path, build, model, rep) -> tuple[dict, dict, list]:
    """Convert a trained ``build`` model three ways (float; full int8; int8 with float I/O, both
    calibrated on ``rep``), check their ops and write them to ``mdir``.
    Returns (blobs by file name, ops by file name, layer rows of the batch-1 model)."""
    blobs = {
        "float.tflite": convert_b1(tf, build, model, int8=False),
        "int8.tflite": convert_b1(tf, build, model, int8=True, int8_io=True, rep_data=rep),
        "int8_float_io.tflite": convert_b1(tf, build, model, int8=True, rep_data=rep),
    }
    ops = check_ops(name, blobs)
    for fname, blob in blobs.items():
        (mdir / fname).write_bytes(blob)
    fixed = build(tf, 1)
    fixed.set_weights(model.get_weights())
    return blobs, ops, layer_rows(tf, fixed)


def run_tflite(model_bytes: bytes, x: np.ndarray) -> tuple[np.ndarray, str]:
    """Outputs (dequantized to float) for every sample of ``x``, one at a time."""
    interp, runtime = _make_interpreter(model_bytes)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    if inp["dtype"] == np.int8:
        xs = quantize_input(x, *inp["quantization"])
    else:
        xs = x.astype(np.float32)
    ys = []
    for i in range(len(x)):
        interp.set_tensor(inp["index"], xs[i : i + 1])
        interp.invoke()
        y = interp.get_tensor(out["index"])[0]
        if out["dtype"] == np.int8:
            scale, zp = out["quantization"]
            y = (y.astype(np.float32) - zp) * scale
        ys.append(y.astype(np.float32))
    return np.stack(ys), runtime


def io_quant(model_bytes: bytes) -> tuple[tuple[float, int], tuple[float, int]]:
    interp, _ = _make_interpreter(model_bytes)
    return interp.get_input_details()[0]["quantization"], interp.get_output_details()[0]["quantization"]


def layer_rows(tf, fixed) -> list[tuple[str, str, str, int, int]]:
    """(name, kind, output shape, parameters, MACs) of every weighted layer.

    Parameters are those of the deployed model: weights plus one bias per
    output channel (BatchNormalization folds into that bias).
    """
    L = tf.keras.layers
    rows = []
    for layer in fixed.layers:
        if not isinstance(layer, (L.Conv2D, L.DepthwiseConv2D, L.Dense)):
            continue
        w = layer.get_weights()[0]
        shape = tuple(int(d) for d in layer.output.shape[1:])
        if isinstance(layer, L.Dense):
            kind = f"Dense {w.shape[0]} → {w.shape[1]}"
            params, macs = w.size + w.shape[1], w.size
        else:
            kh, kw = layer.kernel_size
            s = layer.strides[0]
            oh, ow, oc = shape
            if isinstance(layer, L.DepthwiseConv2D):
                kind = f"DepthwiseConv2D {kh}x{kw}, stride {s}, {layer.padding}"
                macs = oh * ow * oc * kh * kw
            else:
                kind = f"Conv2D {kh}x{kw}, {w.shape[2]} → {oc}, stride {s}, {layer.padding}"
                macs = oh * ow * oc * kh * kw * w.shape[2]
            params = w.size + oc
        rows.append((layer.name, kind, "x".join(map(str, shape)), int(params), int(macs)))
    return rows


def check_ops(name: str, blobs: dict) -> dict:
    ops = {}
    for fname, blob in blobs.items():
        ops[fname] = tflite_ops(blob)
        print(f"[{name}] {fname}: ops = {ops[fname]}")
        bad = sorted(set(ops[fname]) - SDK_OPS)
        if bad:
            sys.exit(f"[{name}] {fname}: operators {bad} are not supported by the npu-sdk compiler")
    return ops


def save_samples(mdir: Path, int8_blob: bytes, x: np.ndarray, **extra) -> tuple:
    """samples.npz: the first N_SAMPLES test inputs, float and int8 (int8.tflite's input quantization)."""
    in_q, out_q = io_quant(int8_blob)
    x_s = x[:N_SAMPLES, None].astype(np.float32)
    np.savez_compressed(mdir / "samples.npz", x_float=x_s, x_int8=quantize_input(x_s, *in_q), **extra)
    return in_q, out_q


def file_sizes(mdir: Path) -> dict:
    return {p.name: p.stat().st_size for p in sorted(mdir.iterdir()) if p.is_file() and p.name != "README.md"}


def _layer_table(rows) -> str:
    lines = ["| layer | operation | output | parameters | MACs |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {k} | {s} | {p:,} | {m:,} |" for n, k, s, p, m in rows]
    lines.append(f"| **total** | | | **{sum(r[3] for r in rows):,}** | **{sum(r[4] for r in rows):,}** |")
    return "\n".join(lines)


def write_card(mdir: Path, *, title: str, intro: str, task: str, data: str, arch: str, rows,
               training: str, files: dict, ops: dict, in_q, out_q, samples: str, metric: str) -> None:
    macs = sum(r[4] for r in rows)
    params = sum(r[3] for r in rows)
    size_lines = "\n".join(f"| `{n}` | {_fmt_size(s)} |" for n, s in files.items())
    ops_lines = "\n".join(f"| `{n}` | {' → '.join(o)} |" for n, o in ops.items())
    text = f"""# {title}

{intro}

## Task

{task}

## Data

{data}

## Architecture

{arch}

{_layer_table(rows)}

MACs per inference: **{macs:,}** (convolution and fully-connected
multiply-accumulates; bias adds, activations, pooling and softmax not counted).
Parameters: **{params:,}** (weights plus one bias per output channel, into
which BatchNormalization, where present, is folded; int8 weights take one
byte each, int32 biases four).

{training}

## Files

| file | size |
|---|---|
{size_lines}

- `float.tflite` — float32 model.
- `int8.tflite` — full-integer post-training quantization ({N_REP} training
  samples as representative dataset), int8 input and output, batch fixed to 1.
  Input quantization: scale {in_q[0]:.9g}, zero point {in_q[1]};
  output quantization: scale {out_q[0]:.9g}, zero point {out_q[1]}.
- `int8_float_io.tflite` — the same int8 model with float32 input/output
  (QUANTIZE at the input edge, DEQUANTIZE at the output edge).
{samples}
- `test.npz` — the whole held-out test split (see Data).

## Operators

| file | operators (execution order) |
|---|---|
{ops_lines}

{metric}

## Rebuild

```
pip install -e .[zoo]
{REBUILD_CMD}
```

This card is generated by `tools/build_zoo.py`; every figure above is measured
by that script. Data generation and training are seeded, but bit-identical
weights across TensorFlow versions or CPUs are not guaranteed.
"""
    (mdir / "README.md").write_text(text, encoding="utf-8")


def _classification_metric(name, x_te, y_te, blobs, n_classes_desc) -> tuple[str, dict]:
    outs, acc = {}, {}
    runtime = "?"
    for fname, blob in blobs.items():
        outs[fname], runtime = run_tflite(blob, x_te)
        acc[fname] = float(np.mean(outs[fname].argmax(1) == y_te))
        print(f"[{name}] {fname}: test accuracy {acc[fname]:.4f} ({runtime})")
    ref = outs["float.tflite"].argmax(1)
    n = len(y_te)
    lines = [
        f"| `{f}` | {acc[f]:.4f} ({round(acc[f] * n)}/{n}) | {np.mean(outs[f].argmax(1) == ref):.4f} |"
        for f in blobs
    ]
    text = f"""## Accuracy

Top-1 accuracy on the whole test split ({n} {n_classes_desc}), measured with
`{runtime}`; "agreement" is the share of test inputs whose
top-1 class equals the float model's:

| model | test accuracy | agreement with float |
|---|---|---|
""" + "\n".join(lines)
    return text, acc


# --------------------------------------------------------------------------
# kws_dscnn: keyword spotting on synthetic MFCC-like features
# --------------------------------------------------------------------------

KWS_SEED = 1
KWS_WORDS = ("up", "down", "left", "right", "yes", "stop")
KWS_FRAMES, KWS_MELS, KWS_COEFFS = 49, 40, 10
KWS_N_TRAIN, KWS_N_TEST = 4200, 420
KWS_CH, KWS_BLOCKS, KWS_EPOCHS = 32, 4, 12
KWS_GRID = 16  # features are rounded to multiples of 1/KWS_GRID


def _dct_ii(n_in: int, n_out: int) -> np.ndarray:
    """First n_out rows of the orthonormal DCT-II matrix (the MFCC cepstrum step)."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    m = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    m[0] /= np.sqrt(2.0)
    return m


def _kws_tracks(c: int, u: np.ndarray):
    """Formant centres F1, F2 (mel band), voiced envelope and fricative envelope of word c
    at normalized word time u in [0, 1]."""
    env = np.sin(np.pi * u) ** 0.5
    fric = np.zeros_like(u)
    if c == 0:  # up: both formants rise
        f1, f2 = 7 + 8 * u, 18 + 12 * u
    elif c == 1:  # down: both formants fall
        f1, f2 = 15 - 8 * u, 30 - 12 * u
    elif c == 2:  # left: F1 steady, F2 rises then falls
        f1, f2 = 10 + 0 * u, 20 + 12 * np.sin(np.pi * u)
    elif c == 3:  # right: F1 falls while F2 rises
        f1, f2 = 14 - 6 * u, 20 + 8 * u**2
    elif c == 4:  # yes: steady vowel, then a /s/ tail
        f1, f2 = 9 + 0 * u, 26 + 0 * u
        env = env * (u < 0.6)
        fric = ((u >= 0.55) & (u < 0.95)).astype(float)
    else:  # stop: /s/ onset, a gap, a short vowel
        f1, f2 = 11 + 2 * u, 22 - 4 * u
        fric = (u < 0.3).astype(float)
        env = env * (u > 0.45)
    return f1, f2, env, fric


def kws_generate(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """n utterances as (n, 49, 10) raw MFCC-like features, balanced labels (shuffled)."""
    dct = _dct_ii(KWS_MELS, KWS_COEFFS)
    y = np.arange(n) % len(KWS_WORDS)
    rng.shuffle(y)
    bands = np.arange(KWS_MELS)[None, :]
    t = np.arange(KWS_FRAMES)
    x = np.empty((n, KWS_FRAMES, KWS_COEFFS), np.float64)
    for i in range(n):
        dur = rng.integers(18, 38)  # word length in frames
        onset = rng.integers(0, KWS_FRAMES - dur + 1)
        u = (t - onset) / (dur - 1)
        inside = ((u >= 0) & (u <= 1)).astype(float)
        uw = np.clip(u, 0, 1) ** rng.uniform(0.7, 1.4)  # non-linear time warp
        f1, f2, env, fric = _kws_tracks(int(y[i]), uw)
        shift, scale = rng.normal(0, 3.0), rng.uniform(0.85, 1.15)  # "speaker" vocal tract
        f1 = f1 * scale + shift + rng.normal(0, 0.7, KWS_FRAMES)
        f2 = f2 * scale + shift + rng.normal(0, 0.9, KWS_FRAMES)
        w1, w2 = rng.uniform(1.2, 2.5), rng.uniform(1.5, 3.0)
        voiced = (np.exp(-0.5 * ((bands - f1[:, None]) / w1) ** 2)
                  + 0.6 * np.exp(-0.5 * ((bands - f2[:, None]) / w2) ** 2)) * (env * inside)[:, None]
        hiss = (fric * inside)[:, None] * (bands >= 26) * rng.uniform(0.3, 1.0, (KWS_FRAMES, KWS_MELS))
        noise = np.exp(rng.uniform(-0.04, 0.01) * bands + rng.normal(0, 0.6, (KWS_FRAMES, KWS_MELS)))
        noise *= rng.uniform(0.2, 1.0)
        if rng.random() < 0.5:  # a short tone burst, in any class
            t0 = rng.integers(0, KWS_FRAMES - 5)
            burst = np.zeros((KWS_FRAMES, 1))
            burst[t0 : t0 + rng.integers(3, 8)] = 1
            noise = noise + burst * 3 * np.exp(-0.5 * ((bands - rng.uniform(5, 35)) / 1.5) ** 2)
        snr = 10 ** rng.uniform(-1.3, 0.8)  # word-to-noise power ratio
        power = noise + snr * 4 * (voiced + 0.7 * hiss)
        x[i] = np.log(power + 1e-3) @ dct.T
    return x, y.astype(np.int64)


def kws_data():
    rng = np.random.default_rng(KWS_SEED)
    x_tr, y_tr = kws_generate(KWS_N_TRAIN, rng)
    x_te, y_te = kws_generate(KWS_N_TEST, rng)
    mean, std = x_tr.mean(axis=(0, 1)), x_tr.std(axis=(0, 1))

    def norm(x):  # per-coefficient standardization, then the 1/16 grid; channel axis last
        return (np.round((x - mean) / std * KWS_GRID) / KWS_GRID).astype(np.float32)[..., None]

    return norm(x_tr), y_tr, norm(x_te), y_te, mean, std


def build_kws_model(tf, batch):
    L = tf.keras.layers
    inp = tf.keras.Input((KWS_FRAMES, KWS_COEFFS, 1), batch_size=batch, name="mfcc")
    h = L.Conv2D(KWS_CH, (10, 4), strides=2, padding="same", use_bias=False, name="conv0")(inp)
    h = L.BatchNormalization(name="bn0")(h)
    h = L.ReLU(name="relu0")(h)
    for b in range(1, KWS_BLOCKS + 1):
        h = L.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw{b}")(h)
        h = L.BatchNormalization(name=f"bn{b}a")(h)
        h = L.ReLU(name=f"relu{b}a")(h)
        h = L.Conv2D(KWS_CH, 1, use_bias=False, name=f"pw{b}")(h)
        h = L.BatchNormalization(name=f"bn{b}b")(h)
        h = L.ReLU(name=f"relu{b}b")(h)
    h = L.AveragePooling2D(pool_size=tuple(h.shape[1:3]), name="avgpool")(h)  # whole map
    h = L.Flatten(name="flatten")(h)
    out = L.Dense(len(KWS_WORDS), activation="softmax", name="fc")(h)
    return tf.keras.Model(inp, out, name="kws_dscnn")


def build_kws_dscnn(tf, out_dir: Path) -> dict:
    name = "kws_dscnn"
    mdir = out_dir / name
    mdir.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr, x_te, y_te, mean, std = kws_data()
    print(f"[{name}] data: train {len(x_tr)}, test {len(x_te)}")
    model, keras_acc = fit_classifier(tf, name, build_kws_model, x_tr, y_tr, x_te, y_te, epochs=KWS_EPOCHS)
    blobs, ops, rows = publish_tflite(tf, name, mdir, build_kws_model, model, x_tr[:N_REP])
    in_q, out_q = save_samples(mdir, blobs["int8.tflite"], x_te, y=y_te[:N_SAMPLES])
    np.savez_compressed(mdir / "test.npz", x=x_te, y=y_te)
    metric, _ = _classification_metric(name, x_te, y_te, blobs, "utterances")

    per_class = len(x_te) // len(KWS_WORDS)
    words = ", ".join(f"{i} `{w}`" for i, w in enumerate(KWS_WORDS))
    write_card(
        mdir,
        title=name,
        intro=(
            "A depthwise-separable CNN for keyword spotting, shaped like the MLPerf Tiny\n"
            "DS-CNN but smaller, trained on synthetic MFCC-like features. Its operators\n"
            "are all supported by the SDK (CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D,\n"
            "FULLY_CONNECTED, SOFTMAX; BatchNorm folded, ReLU fused)."
        ),
        task=(
            f"{len(KWS_WORDS)}-class classification of a 1-second utterance given as "
            f"{KWS_FRAMES} frames x {KWS_COEFFS}\ncepstral coefficients. Classes: {words}.\n"
            "The model outputs a probability per class (softmax); the prediction is the argmax."
        ),
        data=f"""Procedurally generated with `numpy.random.default_rng({KWS_SEED})` (no recordings):
each utterance is a 49-frame x 40-band log-mel spectrogram turned into 10
MFCC-like coefficients by an orthonormal DCT-II, as a keyword-spotting
front end would. A "word" is two formant tracks (Gaussian ridges across the
mel bands) whose trajectories are word-specific (rising, falling, arched,
crossing; `yes` and `stop` add a high-band /s/ fricative, `stop` has a gap),
with random length (18–37 frames), onset, non-linear time warp, speaker shift
and scale of the formants, formant jitter and bandwidths. It is mixed in the
power domain with log-normal background noise of random spectral tilt, an
optional short tone burst (in every class) and a random word-to-noise ratio
from −13 to +8 dB, so low-SNR utterances are genuinely ambiguous.

Features are standardized per coefficient with the training split's mean and
standard deviation, then rounded to multiples of 1/{KWS_GRID}:
mean = `{np.array2string(mean, precision=4, max_line_width=200)}`,
std = `{np.array2string(std, precision=4, max_line_width=200)}`.

Split: {len(x_tr)} training and {len(x_te)} test utterances ({per_class} per class), generated
independently in that order from the same generator. The full test split is
in `test.npz` (`x`: ({len(x_te)}, {KWS_FRAMES}, {KWS_COEFFS}, 1) float32, `y`: ({len(x_te)},) int64).""",
        arch=f"""Input `(1, {KWS_FRAMES}, {KWS_COEFFS}, 1)` float32 (batch fixed to 1) → Conv2D 10x4,
stride 2, {KWS_CH} filters + BatchNorm + ReLU → {KWS_BLOCKS} x [DepthwiseConv2D 3x3 + BatchNorm +
ReLU → Conv2D 1x1, {KWS_CH} filters + BatchNorm + ReLU] → AveragePooling2D over the whole
25x5 map → Flatten (folded away) → Dense {len(KWS_WORDS)} → Softmax. BatchNorms fold
into the convolutions and ReLUs fuse into them; `same` padding is the
operators' own padding (no PAD operator).""",
        rows=rows,
        training=(
            f"Training: Adam (cosine decay from 3e-3), sparse categorical cross-entropy,\n"
            f"{KWS_EPOCHS} epochs, batch 32, seed {SEED}, single-threaded deterministic TF ops\n"
            f"(TensorFlow {tf.__version__}). Keras float test accuracy: {keras_acc:.4f}."
        ),
        files=file_sizes(mdir),
        ops=ops,
        in_q=in_q,
        out_q=out_q,
        samples=(
            f"- `samples.npz` — the first {N_SAMPLES} test utterances: `x_float` ({N_SAMPLES}, 1, {KWS_FRAMES}, {KWS_COEFFS}, 1)\n"
            f"  float32, `x_int8` (same shape) int8 (quantized with `int8.tflite`'s input scale\n"
            f"  and zero point, round half away from zero, then clipped to [-128, 127]),\n"
            f"  `y` ({N_SAMPLES},) int64 labels."
        ),
        metric=metric,
    )
    return {"name": name, "task": f"keyword spotting ({KWS_FRAMES}x{KWS_COEFFS} MFCC-like features, "
            f"{len(KWS_WORDS)} synthetic keywords)", "files": list(file_sizes(mdir)) + ["README.md"]}


# --------------------------------------------------------------------------
# anomaly_ae: vibration-spectrum autoencoder (anomaly detection)
# --------------------------------------------------------------------------

AE_SEED = 2
AE_WINDOW = 256  # samples per vibration window -> 128 spectrum bins (DC dropped)
AE_BINS = AE_WINDOW // 2
AE_UNITS = (64, 32, 16, 32, 64)
AE_N_TRAIN, AE_N_TEST_NORMAL, AE_N_TEST_FAULT = 4000, 250, 250
AE_EPOCHS = 30
AE_GRID = 64  # features are rounded to multiples of 1/AE_GRID
AE_KINDS = ("normal", "looseness", "bearing fault")


def _ae_window(rng, kind: int) -> np.ndarray:
    """One vibration window. kind 0: normal machine, 1: looseness, 2: outer-race bearing fault."""
    t = np.arange(AE_WINDOW)
    f0 = rng.uniform(5.0, 11.0) / AE_WINDOW  # rotation frequency, bins 5-11
    a1 = rng.uniform(0.8, 1.2)
    sig = np.zeros(AE_WINDOW)
    for k in range(1, 7):  # running-speed harmonics, decaying
        ak = a1 * rng.uniform(0.5, 1.0) * 0.55 ** (k - 1)
        sig += ak * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    fr = rng.uniform(60, 80) / AE_WINDOW  # structural resonance rung by broadband noise
    h = np.exp(-np.arange(32) / 6.0) * np.sin(2 * np.pi * fr * np.arange(32))
    sig += rng.uniform(0.02, 0.05) * np.convolve(rng.normal(0, 1, AE_WINDOW + 32), h)[32 : 32 + AE_WINDOW]
    sig += rng.normal(0, rng.uniform(0.02, 0.06), AE_WINDOW)
    if kind == 1:  # mechanical looseness: 0.5x, 1.5x, 2.5x inter-harmonics
        amp = a1 * 10 ** rng.uniform(-1.6, -0.6)
        for k in (0.5, 1.5, 2.5):
            sig += amp * rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    elif kind == 2:  # impulses at the ball-pass frequency ringing a high resonance
        bpfo = f0 * rng.uniform(3.0, 4.0)
        fb = rng.uniform(85, 115) / AE_WINDOW
        amp = a1 * 10 ** rng.uniform(-1.3, -0.3)
        ring = np.exp(-np.arange(24) / 4.0) * np.sin(2 * np.pi * fb * np.arange(24))
        imp = np.zeros(AE_WINDOW + 24)
        for tk in np.arange(rng.uniform(0, 1 / bpfo), AE_WINDOW, 1 / bpfo):
            imp[int(tk)] += 1.0
        sig += amp * np.convolve(imp, ring)[:AE_WINDOW]
    return sig


def ae_features(sig: np.ndarray) -> np.ndarray:
    """Hann-windowed magnitude spectrum, bins 1..128, log-compressed to about [0, 1]."""
    mag = np.abs(np.fft.rfft(sig * np.hanning(AE_WINDOW)))[1 : AE_BINS + 1] / (AE_WINDOW / 4)
    return np.log1p(20 * mag) / 3.0


def ae_generate(rng, kinds) -> np.ndarray:
    x = np.stack([ae_features(_ae_window(rng, int(k))) for k in kinds])
    return (np.round(x * AE_GRID) / AE_GRID).astype(np.float32)


def ae_data():
    rng = np.random.default_rng(AE_SEED)
    x_tr = ae_generate(rng, np.zeros(AE_N_TRAIN, np.int64))
    kind = np.concatenate([np.zeros(AE_N_TEST_NORMAL, np.int64), 1 + np.arange(AE_N_TEST_FAULT) % 2])
    rng.shuffle(kind)
    x_te = ae_generate(rng, kind)
    return x_tr, x_te, (kind > 0).astype(np.int64), kind


def build_ae_model(tf, batch):
    L = tf.keras.layers
    inp = tf.keras.Input((AE_BINS,), batch_size=batch, name="spectrum")
    h = inp
    for i, u in enumerate(AE_UNITS):
        h = L.Dense(u, activation="relu", name=f"fc{i + 1}")(h)
    out = L.Dense(AE_BINS, name=f"fc{len(AE_UNITS) + 1}")(h)  # linear reconstruction
    return tf.keras.Model(inp, out, name="anomaly_ae")


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    return float(roc_auc_score(y, score))


def build_anomaly_ae(tf, out_dir: Path) -> dict:
    name = "anomaly_ae"
    mdir = out_dir / name
    mdir.mkdir(parents=True, exist_ok=True)
    x_tr, x_te, y_te, kind = ae_data()
    print(f"[{name}] data: train {len(x_tr)} normal, test {len(x_te)} ({int(np.sum(y_te == 0))} normal)")
    model = _fit(tf, build_ae_model, x_tr, x_tr, epochs=AE_EPOCHS, lr=2e-3, loss="mse")
    keras_mse = ((model.predict(x_te, verbose=0) - x_te) ** 2).mean(1)
    keras_auc = _auc(y_te, keras_mse)
    print(f"[{name}] keras test AUC: {keras_auc:.4f}")
    if keras_auc < 0.85:
        sys.exit(f"[{name}] keras test AUC {keras_auc:.4f} < 0.85; refusing to publish")

    blobs, ops, rows = publish_tflite(tf, name, mdir, build_ae_model, model, x_tr[:N_REP])
    in_q, out_q = save_samples(mdir, blobs["int8.tflite"], x_te, y=y_te[:N_SAMPLES], kind=kind[:N_SAMPLES])
    np.savez_compressed(mdir / "test.npz", x=x_te, y=y_te, kind=kind)

    rows_m = []
    runtime = "?"
    normal = kind == 0
    for fname, blob in blobs.items():
        rec, runtime = run_tflite(blob, x_te)
        mse = ((rec - x_te) ** 2).mean(1)
        aucs = [_auc(y_te, mse)] + [
            _auc(y_te[normal | (kind == k)], mse[normal | (kind == k)]) for k in (1, 2)
        ]
        print(f"[{name}] {fname}: test AUC {aucs[0]:.4f} (looseness {aucs[1]:.4f}, bearing {aucs[2]:.4f})")
        rows_m.append(
            f"| `{fname}` | {aucs[0]:.4f} | {aucs[1]:.4f} | {aucs[2]:.4f} | "
            f"{np.median(mse[normal]):.5f} | {np.median(mse[~normal]):.5f} |"
        )
    n_n, n_f = int(normal.sum()), int((~normal).sum())
    metric = f"""## Anomaly-detection quality

The anomaly score is the mean squared reconstruction error over the 128 bins,
`mean((model(x) - x)^2)`, with int8 outputs dequantized by the output scale
and zero point. ROC AUC (`sklearn.metrics.roc_auc_score`) on the whole test
split ({n_n} normal, {n_f} faulty windows), overall and per fault type against
all normal windows, and the median score of each group; measured with
`{runtime}`:

| model | AUC | AUC looseness | AUC bearing fault | median MSE normal | median MSE faulty |
|---|---|---|---|---|---|
""" + "\n".join(rows_m) + """

A deployment picks a threshold on the score from normal data (for example a
high percentile of the training windows' scores)."""

    write_card(
        mdir,
        title=name,
        intro=(
            "A fully-connected autoencoder for anomaly detection on machine vibration:\n"
            "trained on normal spectra only, it reconstructs them well and unseen fault\n"
            "signatures badly. Its operators are all supported by the SDK\n"
            "(FULLY_CONNECTED with fused ReLU)."
        ),
        task=(
            f"Anomaly detection on {AE_BINS}-bin vibration spectra. The model outputs a\n"
            "reconstruction of its input; the reconstruction error is the anomaly score\n"
            "(higher means more anomalous)."
        ),
        data=f"""Procedurally generated with `numpy.random.default_rng({AE_SEED})` (no recordings).
A window is {AE_WINDOW} samples of a simulated accelerometer on a rotating machine:
running-speed harmonics 1x–6x with decaying random amplitudes and phases
(rotation frequency uniform over bins 5–11), a structural resonance (bins
60–80) rung by broadband noise, and white sensor noise. Faults, only in the
test split, alternate between *looseness* (0.5x, 1.5x, 2.5x inter-harmonics,
−32 to −12 dB below 1x) and an *outer-race bearing fault* (impulses at 3–4x
running speed ringing a resonance at bins 85–115, −26 to −6 dB). Features: the
Hann-windowed magnitude spectrum, bins 1–{AE_BINS}, as `log1p(20 |X| / {AE_WINDOW // 4}) / 3`
(about [0, 1]), rounded to multiples of 1/{AE_GRID}.

Split: {len(x_tr)} normal training windows; a test split of {n_n} normal and {n_f}
faulty windows (shuffled), generated after the training split from the same
generator. The full test split is in `test.npz` (`x`: ({len(x_te)}, {AE_BINS}) float32,
`y`: ({len(x_te)},) int64, 1 = anomaly, `kind`: ({len(x_te)},) int64, 0 normal,
1 looseness, 2 bearing fault).""",
        arch=f"""Input `(1, {AE_BINS})` float32 (batch fixed to 1) → Dense {' → Dense '.join(map(str, AE_UNITS))}
(each + ReLU, fused) → Dense {AE_BINS} (linear reconstruction).""",
        rows=rows,
        training=(
            f"Training: on normal windows only, Adam (cosine decay from 2e-3), mean squared\n"
            f"error, {AE_EPOCHS} epochs, batch 32, seed {SEED}, single-threaded deterministic TF ops\n"
            f"(TensorFlow {tf.__version__}). Keras float test AUC: {keras_auc:.4f}."
        ),
        files=file_sizes(mdir),
        ops=ops,
        in_q=in_q,
        out_q=out_q,
        samples=(
            f"- `samples.npz` — the first {N_SAMPLES} test windows: `x_float` ({N_SAMPLES}, 1, {AE_BINS}) float32,\n"
            f"  `x_int8` (same shape) int8 (quantized with `int8.tflite`'s input scale and zero\n"
            f"  point, round half away from zero, then clipped to [-128, 127]), `y` ({N_SAMPLES},)\n"
            f"  int64 (1 = anomaly), `kind` ({N_SAMPLES},) int64. The reconstruction target is the input."
        ),
        metric=metric,
    )
    return {"name": name, "task": f"machine-vibration anomaly detection ({AE_BINS}-bin spectrum autoencoder)",
            "files": list(file_sizes(mdir)) + ["README.md"]}


# --------------------------------------------------------------------------
# vww_mobilenet: person detection on synthetic scenes (MobileNetV1-style)
# --------------------------------------------------------------------------

VWW_SEED = 3
VWW_SIZE = 48
VWW_CH = (16, 32, 48, 48, 80, 80)  # stem, then the pointwise width of each block
VWW_STRIDES = (1, 2, 1, 2, 1)  # depthwise stride of each block
VWW_N_TRAIN, VWW_N_TEST = 5000, 160
VWW_EPOCHS = 8
VWW_CLASSES = ("no person", "person")


def _vww_color(rng, lo=0, hi=255):
    return rng.integers(lo, hi + 1, 3).astype(np.float64)


def vww_image(rng, person: bool) -> np.ndarray:
    """One 48x48 RGB uint8 scene: sky/ground, clutter, and a stick-figure person if asked."""
    S = VWW_SIZE
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float64)
    img = np.empty((S, S, 3))
    sky, ground = _vww_color(rng, 60, 230), _vww_color(rng, 20, 160)
    g = np.clip((yy - rng.uniform(0.3, 0.7) * S) / 3.0 + 0.5, 0, 1)[..., None]
    img[:] = sky * (1 - g) + ground * g
    img += (yy / S - 0.5)[..., None] * rng.uniform(-40, 40)  # vertical light gradient

    def fill(mask, color):
        img[mask] = color

    def rect(x0, y0, w, h, color):
        fill((xx >= x0) & (xx < x0 + w) & (yy >= y0) & (yy < y0 + h), color)

    def ellipse(cx, cy, rx, ry, color):
        fill(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1, color)

    def bar(x0, y0, x1, y1, w, color):  # thick line segment
        dx, dy = x1 - x0, y1 - y0
        tt = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy + 1e-9), 0, 1)
        fill((xx - x0 - tt * dx) ** 2 + (yy - y0 - tt * dy) ** 2 <= (w / 2) ** 2, color)

    for _ in range(rng.integers(1, 6)):  # clutter, in both classes
        kind = rng.integers(0, 4)
        c = _vww_color(rng)
        if kind == 0:  # boxes: buildings, cars, signs
            rect(rng.uniform(-5, S), rng.uniform(0, S), rng.uniform(4, 20), rng.uniform(4, 20), c)
        elif kind == 1:  # pole or tree trunk, sometimes with a round top (a head-like decoy)
            x0, y0 = rng.uniform(0, S), rng.uniform(0, S * 0.6)
            bar(x0, y0, x0 + rng.normal(0, 1), y0 + rng.uniform(10, 30), rng.uniform(1.5, 4), c)
            if rng.random() < 0.3:
                ellipse(x0, y0, rng.uniform(2, 6), rng.uniform(2, 6), _vww_color(rng))
        elif kind == 2:  # balls
            r = rng.uniform(1.5, 5)
            ellipse(rng.uniform(0, S), rng.uniform(0, S), r, r * rng.uniform(0.8, 1.2), c)
        else:  # bushes
            ellipse(rng.uniform(0, S), rng.uniform(S * 0.4, S), rng.uniform(3, 10), rng.uniform(2, 6), c)
    if person:
        h = rng.uniform(18, 38)  # figure height in pixels
        cx, top = rng.uniform(4, S - 4), rng.uniform(-0.1 * h, S - 0.8 * h)
        body, skin = _vww_color(rng), _vww_color(rng, 40, 255)
        legs = body if rng.random() < 0.4 else _vww_color(rng)
        hr, w = h * 0.09, max(1.2, h * 0.08)
        ellipse(cx, top + hr, hr, hr * 1.15, skin)  # head
        sh, hip = top + 2.2 * hr, top + 0.55 * h
        ellipse(cx, (sh + hip) / 2, h * 0.11, (hip - sh) / 2 + 1, body)  # torso
        for s in (-1, 1):
            bar(cx + s * h * 0.06, hip, cx + s * h * rng.uniform(0.03, 0.15), top + h, w, legs)
            bar(cx + s * h * 0.1, sh + 1, cx + s * h * rng.uniform(0.1, 0.3),
                sh + h * rng.uniform(0.15, 0.35), w * 0.8, body)  # arms
    if rng.random() < 0.3:  # an occluder in front
        rect(rng.uniform(-5, S), rng.uniform(S * 0.5, S), rng.uniform(5, 20), rng.uniform(4, 12), _vww_color(rng))
    # exposure, and coarse 8x8-block sensor noise in steps of 4 (keeps the files compressible)
    blk = np.round(rng.normal(0, rng.uniform(2, 8), (S // 8, S // 8, 1)) / 4).repeat(8, 0).repeat(8, 1) * 4
    return np.clip(np.round(img * rng.uniform(0.6, 1.2) + blk), 0, 255).astype(np.uint8)


def vww_generate(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """n scenes as float32 (pixel - 128) / 128 in [-1, 1), balanced labels (shuffled)."""
    y = np.arange(n) % 2
    rng.shuffle(y)
    px = np.stack([vww_image(rng, bool(v)) for v in y])
    return ((px.astype(np.float32) - 128.0) / 128.0), y.astype(np.int64)


def build_vww_model(tf, batch):
    L = tf.keras.layers
    inp = tf.keras.Input((VWW_SIZE, VWW_SIZE, 3), batch_size=batch, name="image")
    h = L.Conv2D(VWW_CH[0], 3, strides=2, padding="same", use_bias=False, name="conv0")(inp)
    h = L.BatchNormalization(name="bn0")(h)
    h = L.ReLU(6.0, name="relu0")(h)
    for b, (ch, s) in enumerate(zip(VWW_CH[1:], VWW_STRIDES), start=1):
        h = L.DepthwiseConv2D(3, strides=s, padding="same", use_bias=False, name=f"dw{b}")(h)
        h = L.BatchNormalization(name=f"bn{b}a")(h)
        h = L.ReLU(6.0, name=f"relu{b}a")(h)
        h = L.Conv2D(ch, 1, use_bias=False, name=f"pw{b}")(h)
        h = L.BatchNormalization(name=f"bn{b}b")(h)
        h = L.ReLU(6.0, name=f"relu{b}b")(h)
    h = L.AveragePooling2D(pool_size=tuple(h.shape[1:3]), name="avgpool")(h)  # whole map
    h = L.Flatten(name="flatten")(h)
    out = L.Dense(len(VWW_CLASSES), activation="softmax", name="fc")(h)
    return tf.keras.Model(inp, out, name="vww_mobilenet")


def build_vww_mobilenet(tf, out_dir: Path) -> dict:
    name = "vww_mobilenet"
    mdir = out_dir / name
    mdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(VWW_SEED)
    x_tr, y_tr = vww_generate(VWW_N_TRAIN, rng)
    x_te, y_te = vww_generate(VWW_N_TEST, rng)
    print(f"[{name}] data: train {len(x_tr)}, test {len(x_te)}")
    model, keras_acc = fit_classifier(tf, name, build_vww_model, x_tr, y_tr, x_te, y_te, epochs=VWW_EPOCHS)
    blobs, ops, rows = publish_tflite(tf, name, mdir, build_vww_model, model, x_tr[:N_REP])
    in_q, out_q = save_samples(mdir, blobs["int8.tflite"], x_te, y=y_te[:N_SAMPLES])
    np.savez_compressed(mdir / "test.npz", x=x_te, y=y_te)
    metric, _ = _classification_metric(name, x_te, y_te, blobs, "images")

    blocks = " →\n".join(
        f"[DepthwiseConv2D 3x3, stride {s} → Conv2D 1x1, {c} filters]" for c, s in zip(VWW_CH[1:], VWW_STRIDES)
    )
    write_card(
        mdir,
        title=name,
        intro=(
            "A MobileNetV1-style person detector (in the spirit of Visual Wake Words) on\n"
            "small synthetic RGB scenes. It is the compute-heavy model of the zoo: a few\n"
            "million MACs with a small weight footprint. Its operators are all supported\n"
            "by the SDK (CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, FULLY_CONNECTED,\n"
            "SOFTMAX; BatchNorm folded, ReLU6 fused)."
        ),
        task=(
            f"Binary classification of a {VWW_SIZE}x{VWW_SIZE} RGB image: class 0 `{VWW_CLASSES[0]}`,\n"
            f"class 1 `{VWW_CLASSES[1]}`. The model outputs a probability per class (softmax); the\n"
            "prediction is the argmax."
        ),
        data=f"""Procedurally generated with `numpy.random.default_rng({VWW_SEED})` (no photographs):
each scene has a random sky/ground split with a vertical light gradient, 1–5
clutter objects in both classes (boxes, poles and tree trunks — some with a
round, head-like top —, balls, bushes), and, for `person`, a stick-figure
silhouette (head, torso, arms, legs; 18–38 px tall, random colours and pose,
possibly cut by the image border), then sometimes an occluding box, a random
exposure and coarse 8x8-block sensor noise. Pixels are uint8; the model input
is `(pixel - 128) / 128` as float32 (exactly representable, in [-1, 1)).

Split: {len(x_tr)} training and {len(x_te)} test images (balanced), generated independently in that
order from the same generator. The full test split is in `test.npz`
(`x`: ({len(x_te)}, {VWW_SIZE}, {VWW_SIZE}, 3) float32, `y`: ({len(x_te)},) int64); the
test split is small to keep the zoo small.""",
        arch=f"""Input `(1, {VWW_SIZE}, {VWW_SIZE}, 3)` float32 (batch fixed to 1) → Conv2D 3x3, stride 2,
{VWW_CH[0]} filters →
{blocks} →
AveragePooling2D over the whole {VWW_SIZE // 8}x{VWW_SIZE // 8} map → Flatten (folded away) →
Dense 2 → Softmax. Every convolution is followed by BatchNorm
(folded) and ReLU6 (fused); `same` padding is the operators' own padding (no
PAD operator).""",
        rows=rows,
        training=(
            f"Training: Adam (cosine decay from 3e-3), sparse categorical cross-entropy,\n"
            f"{VWW_EPOCHS} epochs, batch 32, seed {SEED}, single-threaded deterministic TF ops\n"
            f"(TensorFlow {tf.__version__}). Keras float test accuracy: {keras_acc:.4f}."
        ),
        files=file_sizes(mdir),
        ops=ops,
        in_q=in_q,
        out_q=out_q,
        samples=(
            f"- `samples.npz` — the first {N_SAMPLES} test images: `x_float` ({N_SAMPLES}, 1, {VWW_SIZE}, {VWW_SIZE}, 3)\n"
            f"  float32, `x_int8` (same shape) int8 (quantized with `int8.tflite`'s input scale\n"
            f"  and zero point, round half away from zero, then clipped to [-128, 127]),\n"
            f"  `y` ({N_SAMPLES},) int64 labels."
        ),
        metric=metric,
    )
    return {"name": name, "task": f"person detection ({VWW_SIZE}x{VWW_SIZE} RGB synthetic scenes, 2 classes)",
            "files": list(file_sizes(mdir)) + ["README.md"]}


def write_index(out_dir: Path, entries: list[dict]) -> None:
    rows = "\n".join(
        f"| [{e['name']}]({e['name']}/README.md) | {e['task']} | "
        + ", ".join(f"`{f}`" for f in e["files"])
        + " |"
        for e in entries
    )
    text = f"""# npu-sdk model zoo

Small, real models for trying out and testing the npu-sdk toolchain: each
model directory holds a float32 `.tflite`, a full-int8 `.tflite` (int8 I/O),
an int8 `.tflite` with float I/O, a 16x8 `.tflite` (int16 activations, int8
weights, float I/O: `int16x8.tflite`), sample inputs (`samples.npz`), its held-out
test split (`test.npz`) and a model card (`README.md`) with measured accuracy,
size and cost. Everything here is generated by `tools/build_zoo.py` from data
that ships with Python packages or is generated procedurally (seeded), so no
download is needed; rebuild with `{REBUILD_CMD}`, then
`python tools/zoo_cards.py` (the 16x8 models and the npu-sdk figures; both need
`pip install -e .[zoo]`).

| name | task | files |
|---|---|---|
{rows}
"""
    (out_dir / "README.md").write_text(text, encoding="utf-8")


# name -> builder, run in this order. digits_mlp comes first so
# that its training sees exactly the same TF/numpy state as when it was alone.
MODELS = {
    "digits_mlp": build_digits_mlp,
    "kws_dscnn": build_kws_dscnn,
    "anomaly_ae": build_anomaly_ae,
    "vww_mobilenet": build_vww_mobilenet,
}


def _index_entry_from_dir(out_dir: Path, name: str) -> dict | None:
    """Index entry of an already-built model (for --only): task from its current index row."""
    mdir = out_dir / name
    if not (mdir / "README.md").is_file():
        return None
    task = ""
    index = out_dir / "README.md"
    if index.is_file():
        for line in index.read_text(encoding="utf-8").splitlines():
            if line.startswith(f"| [{name}]("):
                task = line.split("|")[2].strip()
    return {"name": name, "task": task, "files": list(file_sizes(mdir)) + ["README.md"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="model_zoo", type=Path, help="output directory (default: model_zoo)")
    ap.add_argument("--only", nargs="+", choices=list(MODELS), metavar="NAME",
                    help="rebuild only these models (others keep their files and index rows); "
                    f"choices: {', '.join(MODELS)}")
    args = ap.parse_args(argv)

    tf = _import_tf()
    _import_sklearn()
    _configure_tf(tf)

    args.out.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, build in MODELS.items():
        if args.only is None or name in args.only:
            entries.append(build(tf, args.out))
        else:
            entry = _index_entry_from_dir(args.out, name)
            if entry is not None:
                entries.append(entry)
    write_index(args.out, entries)
    print(f"wrote {args.out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
