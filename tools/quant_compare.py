"""Compare the SDK's post-training quantization with TensorFlow's, model by model.

For every model_zoo/<name>/ with a float.tflite and a test.npz: the first half
of test.npz calibrates, the second half is held out. Prints held-out top-1
accuracy and SQNR (dB) of the model output against the float model for

- float: float.tflite in LiteRT;
- TF PTQ (zoo): the committed int8_float_io.tflite, made by TF's converter on
  200 training samples (always shown);
- TF PTQ (same calib): TF's converter on the same calibration half, when
  TensorFlow is importable (the graph is rebuilt as a tf.function from the
  float .tflite's weights; FULLY_CONNECTED / RESHAPE / SOFTMAX only);
- SDK <method>: npu_sdk.quantize with each range method.

Accuracy differences are to float, in points; SQNR differences are to the TF
PTQ (zoo) row; "= TF same" is the share of held-out outputs bit-identical to
TF PTQ on the same calibration data. Runs in the project venv (TF optional):
    python tools/quant_compare.py [--json]
"""
import argparse
import contextlib
import io
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "sdk"))  # also runs from a TF venv without npu-sdk installed

from npu_sdk import quantize, reference, tflite, tflite_writer  # noqa: E402


def _outputs(model_bytes, x):
    return np.stack([reference.run_litert(model_bytes, [xi])[0].astype(np.float32).ravel() for xi in x])


def _row(variant, outs, float_outputs, y, tf_outs=None):
    row = {"variant": variant, "accuracy": float(np.mean(outs.argmax(axis=1) == y)),
           "sqnr_db": quantize.sqnr_db(float_outputs, outs)}
    if tf_outs is not None:  # share of held-out outputs bit-identical to TF PTQ on the same data
        row["same_as_tf"] = float(np.mean(np.all(outs == tf_outs, axis=1)))
    return row


def _tf_ptq(graph, calib):
    """TF converter full-int8 PTQ (float I/O) of `graph` calibrated on `calib`; None without TF."""
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf
    except ImportError:
        return None
    t = graph.tensors
    supported = {"FULLY_CONNECTED", "RESHAPE", "SOFTMAX"}
    if any(op.kind not in supported for op in graph.ops) or len(graph.inputs) != 1:
        return None
    acts = {"NONE": tf.identity, "RELU": tf.nn.relu, "RELU6": tf.nn.relu6}
    x_t = t[graph.inputs[0]]

    @tf.function(input_signature=[tf.TensorSpec(x_t.shape, tf.float32)])
    def model(x):
        env = {graph.inputs[0]: x}
        for op in graph.ops:
            a = env[op.inputs[0]]
            if op.kind == "RESHAPE":
                y = tf.reshape(a, t[op.outputs[0]].shape)
            elif op.kind == "SOFTMAX":
                y = tf.nn.softmax(a * op.options.get("beta", 1.0))
            else:
                y = tf.matmul(a, tf.constant(t[op.inputs[1]].data.T))
                if len(op.inputs) > 2 and op.inputs[2] >= 0:
                    y = y + tf.constant(t[op.inputs[2]].data)
                y = acts[op.options.get("activation", "NONE")](y)
            env[op.outputs[0]] = y
        return env[graph.outputs[0]]

    conv = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([s.reshape(x_t.shape).astype(np.float32)] for s in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with contextlib.redirect_stdout(io.StringIO()):
        return conv.convert()


def compare(model_dir):
    d = np.load(model_dir / "test.npz")
    half = len(d["x"]) // 2
    calib, x, y = d["x"][:half], d["x"][half:], d["y"][half:]
    float_bytes = (model_dir / "float.tflite").read_bytes()
    graph = tflite.parse(float_bytes, source=str(model_dir / "float.tflite"))
    float_out = np.stack([reference.run_litert(float_bytes, [xi])[0].astype(np.float32).ravel() for xi in x])
    rows = [{"variant": "float", "accuracy": float(np.mean(float_out.argmax(axis=1) == y)), "sqnr_db": None}]
    zoo = model_dir / "int8_float_io.tflite"
    if zoo.exists():
        rows.append(_row("TF PTQ (zoo, 200 train)", _outputs(zoo.read_bytes(), x), float_out, y))
    tf_bytes = _tf_ptq(graph, calib)
    tf_outs = None
    if tf_bytes is not None:
        tf_outs = _outputs(tf_bytes, x)
        rows.append(_row("TF PTQ (same calib)", tf_outs, float_out, y))
    for method in quantize.METHODS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", quantize.CalibrationWarning)
            g = quantize.quantize(graph, calib, method=method)
        rows.append(_row("SDK %s" % method, _outputs(tflite_writer.write(g), x), float_out, y, tf_outs))
    return {"model": model_dir.name, "calibration": len(calib), "held_out": len(x), "rows": rows}


def print_table(result):
    rows = result["rows"]
    f_acc = rows[0]["accuracy"]
    tf_sqnr = next((r["sqnr_db"] for r in rows if r["variant"].startswith("TF PTQ (zoo")), None)
    print("\n%s: calibration %d samples, held out %d (test.npz halves)"
          % (result["model"], result["calibration"], result["held_out"]))
    print("%-26s %9s %12s %12s %15s %12s" % ("variant", "accuracy", "vs float", "SQNR dB", "vs TF zoo",
                                             "= TF same"))
    for r in rows:
        sq = "" if r["sqnr_db"] is None else "%.2f" % r["sqnr_db"]
        dsq = ("%+.2f dB" % (r["sqnr_db"] - tf_sqnr)
               if r["sqnr_db"] is not None and tf_sqnr is not None else "")
        same = "%.0f%%" % (100 * r["same_as_tf"]) if "same_as_tf" in r else ""
        print("%-26s %9.4f %+10.2f pt %12s %15s %12s" % (r["variant"], r["accuracy"],
                                                        100 * (r["accuracy"] - f_acc), sq, dsq, same))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo", default=str(ROOT / "model_zoo"))
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args()
    dirs = sorted(m for m in Path(args.zoo).iterdir() if (m / "float.tflite").exists() and (m / "test.npz").exists())
    results = [compare(m) for m in dirs]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print_table(r)


if __name__ == "__main__":
    main()
