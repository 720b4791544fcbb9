"""TensorFlow's full-int8 (or 16x8) post-training quantization of a float .tflite, for
comparisons.

    python tools/tf_ptq.py FLOAT.tflite CALIB.npy OUT.tflite [--check X.npy] [--int16]

Runs with a Python that has TensorFlow (it is no npu-sdk dependency; see
tools/quant_compare.py --tf-python). TF's converter cannot read a .tflite, so
the float model's graph is rebuilt as a tf.function from its own weights, one
TF op per TFLite op (`rebuild`); that rebuild must give the float .tflite's
outputs (run in LiteRT) on the calibration samples and on --check's samples
before it is used. Then TFLiteConverter quantizes it (Optimize.DEFAULT,
TFLITE_BUILTINS_INT8, float input and output, as `npu compile --calib` does),
calibrated on exactly CALIB's samples, in order; with --int16 TF's 16x8 mode
(EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8: int16 activations, int8
weights, as `npu compile --calib --activations int16`). Prints one JSON line:
{"tf_version", "rebuild_max_abs_diff", "float_max_abs"}. A bad model or a
rebuild that does not match: one error line, exit 1, nothing written.
"""
import argparse
import contextlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sdk"))  # runs without npu-sdk installed

from npu_sdk import reference, tflite  # noqa: E402
from npu_sdk.errors import NpuError  # noqa: E402

REBUILD_RTOL = 1e-4  # of the largest |output|: float32 summation order only


class RebuildError(Exception):
    pass


def rebuild(tf, graph):
    """A tf.function computing `graph` (batch 1, one input, one output) from its weights."""
    t = graph.tensors
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise RebuildError("one input and one output only (the model has %d and %d)"
                           % (len(graph.inputs), len(graph.outputs)))
    acts = {"NONE": tf.identity, "RELU": tf.nn.relu, "RELU6": tf.nn.relu6,
            "RELU_N1_TO_1": lambda v: tf.clip_by_value(v, -1.0, 1.0)}

    def const(i):
        return tf.constant(t[i].data)

    def fused(op, y):
        return acts[op.options.get("activation", "NONE")](y)

    def bias(op, y):
        return y + const(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else y

    def conv(op, x):
        o = op.options
        w = np.transpose(t[op.inputs[1]].data, (1, 2, 3, 0))  # OHWI -> HWIO
        y = tf.nn.conv2d(x, w, [1, o["stride_h"], o["stride_w"], 1], o["padding"],
                         dilations=[1, o["dilation_h"], o["dilation_w"], 1])
        return fused(op, bias(op, y))

    def depthwise(op, x):
        o = op.options
        _, kh, kw, cm = t[op.inputs[1]].shape
        c = t[op.inputs[0]].shape[3]
        w = t[op.inputs[1]].data.reshape(kh, kw, c, cm // c)  # [1, kh, kw, c*m] -> [kh, kw, c, m]
        y = tf.nn.depthwise_conv2d(x, w, [1, o["stride_h"], o["stride_w"], 1], o["padding"],
                                   dilations=[o["dilation_h"], o["dilation_w"]])
        return fused(op, bias(op, y))

    def fully_connected(op, x):
        w = t[op.inputs[1]].data
        y = tf.matmul(tf.reshape(x, [-1, w.shape[1]]), tf.constant(w.T))
        return fused(op, bias(op, y))

    def pool(fn):
        def run(op, x):
            o = op.options
            y = fn(x, [o["filter_h"], o["filter_w"]], [o["stride_h"], o["stride_w"]], o["padding"])
            return fused(op, y)
        return run

    def binary(fn):
        return lambda op, a, b: fused(op, fn(a, b))

    builders = {
        "CONV_2D": conv, "DEPTHWISE_CONV_2D": depthwise, "FULLY_CONNECTED": fully_connected,
        "AVERAGE_POOL_2D": pool(tf.nn.avg_pool2d), "MAX_POOL_2D": pool(tf.nn.max_pool2d),
        "RESHAPE": lambda op, x, *_: tf.reshape(x, t[op.outputs[0]].shape),
        "SOFTMAX": lambda op, x: tf.nn.softmax(x * op.options.get("beta", 1.0)),
        "ADD": binary(tf.add), "MUL": binary(tf.multiply), "SUB": binary(tf.subtract),
        "MEAN": lambda op, x, axis: tf.reduce_mean(x, axis=axis, keepdims=bool(op.options.get("keep_dims"))),
        "LOGISTIC": lambda op, x: tf.sigmoid(x), "TANH": lambda op, x: tf.tanh(x),
        "RELU": lambda op, x: tf.nn.relu(x), "RELU6": lambda op, x: tf.nn.relu6(x),
        "LEAKY_RELU": lambda op, x: tf.nn.leaky_relu(x, op.options.get("alpha", 0.2)),
        "PAD": lambda op, x, p: tf.pad(x, p),
        "CONCATENATION": lambda op, *xs: fused(op, tf.concat(xs, op.options.get("axis", -1))),
    }
    weighted = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
    missing = sorted({"#%d %s" % (op.index, op.kind) for op in graph.ops if op.kind not in builders})
    if missing:
        raise RebuildError("cannot rebuild in TensorFlow: %s (rebuildable: %s)"
                           % (", ".join(missing), ", ".join(sorted(builders))))
    x_t = t[graph.inputs[0]]

    @tf.function(input_signature=[tf.TensorSpec(x_t.shape, tf.float32)])
    def model(x):
        env = {graph.inputs[0]: x}

        def value(i):
            return env[i] if i in env else const(i)

        for op in graph.ops:
            args = op.inputs[:1] if op.kind in weighted else [i for i in op.inputs if i >= 0]
            env[op.outputs[0]] = builders[op.kind](op, *[value(i) for i in args])
        return env[graph.outputs[0]]

    return model


def check(model, float_bytes, samples):
    """(max |TF - LiteRT|, max |LiteRT|) over `samples`; RebuildError beyond REBUILD_RTOL."""
    interpreter = reference.litert_interpreter(float_bytes)
    worst = scale = 0.0
    for x in samples:
        want = reference.run_litert(float_bytes, [x], interpreter=interpreter)[0]
        got = model(x).numpy()
        worst = max(worst, float(np.max(np.abs(got.reshape(want.shape) - want))))
        scale = max(scale, float(np.max(np.abs(want))))
    if worst > REBUILD_RTOL * max(scale, 1e-6):
        raise RebuildError("the TensorFlow rebuild differs from the float model by %.3g (outputs up to "
                           "%.3g); not using it" % (worst, scale))
    return worst, scale


def convert(tf, model, calib, int16=False):
    conv = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x] for x in calib)
    conv.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8 if int16
        else tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with contextlib.redirect_stdout(io.StringIO()):  # the converter talks on stdout
        return conv.convert()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("calib", help=".npy of calibration samples (N, *input shape without or with batch 1)")
    p.add_argument("out")
    p.add_argument("--check", help=".npy of further samples the rebuild must match the float model on")
    p.add_argument("--int16", action="store_true", help="16x8: int16 activations, int8 weights")
    args = p.parse_args()
    try:
        import tensorflow as tf
    except ImportError:
        sys.exit("tf_ptq.py: TensorFlow is not installed in %s" % sys.executable)
    try:
        float_bytes = Path(args.model).read_bytes()
        graph = tflite.parse(float_bytes, source=args.model)
        shape = graph.tensors[graph.inputs[0]].shape
        calib = [np.asarray(x, np.float32).reshape(shape) for x in np.load(args.calib)]
        extra = [np.asarray(x, np.float32).reshape(shape) for x in np.load(args.check)] if args.check else []
        model = rebuild(tf, graph)
        worst, scale = check(model, float_bytes, calib + extra)
        out = convert(tf, model, calib, args.int16)
    except (RebuildError, NpuError, OSError, ValueError) as e:
        sys.exit("tf_ptq.py: %s: %s" % (args.model, e))
    Path(args.out).write_bytes(out)
    print(json.dumps(dict(tf_version=tf.__version__, rebuild_max_abs_diff=worst, float_max_abs=scale)))


if __name__ == "__main__":
    main()
