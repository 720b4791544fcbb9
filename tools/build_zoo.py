#!/usr/bin/env python3
"""Build the npu-sdk model zoo.

Usage:
    python tools/build_zoo.py [--out model_zoo]

Trains small Keras models on data that ships inside Python packages (no
network access needed), converts them to TFLite (float32, full-int8 and
int8-with-float-I/O), saves sample inputs and the held-out test split, and
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
an int8 `.tflite` with float I/O, sample inputs (`samples.npz`), its held-out
test split (`test.npz`) and a model card (`README.md`) with measured accuracy,
size and cost. Everything here is generated by `tools/build_zoo.py` from data
that ships with Python packages; rebuild with `{REBUILD_CMD}`
(needs `pip install -e .[zoo]`).

| name | task | files |
|---|---|---|
{rows}
"""
    (out_dir / "README.md").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="model_zoo", type=Path, help="output directory (default: model_zoo)")
    args = ap.parse_args(argv)

    tf = _import_tf()
    _import_sklearn()
    _configure_tf(tf)

    args.out.mkdir(parents=True, exist_ok=True)
    entries = [build_digits_mlp(tf, args.out)]
    write_index(args.out, entries)
    print(f"wrote {args.out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
