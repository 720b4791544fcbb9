#!/usr/bin/env python3
"""Regenerate the converter-made single-op conformance models in tests/conformance/models/.

Usage (needs TensorFlow; the tests only read the committed files):
    python tools/make_op_models.py [--out tests/conformance/models]

Every op of issue 3 is built as a small Keras model (the op alone, or with the
trivial context the converter needs to emit it) and converted by the TFLite
converter with full-integer post-training quantization (int8 weights and
activations; int8 I/O unless the model tests QUANTIZE / DEQUANTIZE), calibrated on
a seeded representative dataset. Next to each NAME.tflite sit its seeded sample
inputs NAME.in0.npy (NAME.in1.npy, ...: one file per model input, a batch of
SAMPLES samples in the model's input dtype). MANIFEST.json lists, per model, the op
under test and the op list the converter emitted; the script refuses to write a
model whose op list lacks its op.

What the converter does not emit standalone, and how these models get it:
  QUANTIZE (float -> int8), DEQUANTIZE  only at float model boundaries: the *_float_io
      models keep float32 inputs/outputs (inference_input_type float32).
  QUANTIZE (int8 -> int8, requantize)   only where a tensor needs two quantizations:
      CONCATENATION (one quantization for all operands) of LOGISTIC and TANH outputs,
      whose output quantizations the int8 spec fixes (requantize_concat).
  PAD vs PADV2                          ZeroPadding2D gives PAD; tf.pad with a non-zero
      constant gives PADV2 (both are the compiler's PAD path).
  HARD_SWISH                            Keras' hard_swish activation (x * relu6(x + 3) / 6)
      is pattern-matched into one HARD_SWISH op.
  dilated CONV_2D / DEPTHWISE_CONV_2D   TF 2.21 emits one op with dilation factors for a
      fixed batch (older converters and a dynamic batch give SPACE_TO_BATCH_ND -> conv ->
      BATCH_TO_SPACE_ND, which tests/fixtures/dilated_*.tflite cover).
  fused activations                     RELU/RELU6 after CONV_2D, DEPTHWISE_CONV_2D,
      FULLY_CONNECTED, ADD, MUL and the pools are fused into the op; the standalone RELU,
      RELU6 and LEAKY_RELU models apply them straight to the model input.
Weights and calibration come from fixed seeds; the same TensorFlow version rewrites
the same bytes.
"""
import argparse
import contextlib
import io
import json
import os
import sys
import zlib
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
SEED = 0
SAMPLES = 3
CALIBRATION = 32
OUT = Path(__file__).resolve().parent.parent / "tests" / "conformance" / "models"


def _import_tf():
    try:
        import tensorflow as tf  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on environment
        sys.exit("make_op_models.py needs TensorFlow: pip install -e .[zoo]\n(%s)" % exc)
    return tf


# --- model builders: each returns (keras model, [input shapes without batch]) -----------------

def _single(tf, shape, *layers):
    x = inp = tf.keras.Input(shape, batch_size=1)
    for layer in layers:
        x = layer(x)
    return tf.keras.Model(inp, x), [shape]


def _binary(tf, shape1, shape2, fn):
    a, b = tf.keras.Input(shape1, batch_size=1), tf.keras.Input(shape2, batch_size=1)
    return tf.keras.Model([a, b], fn(a, b)), [shape1, shape2]


def _lambda(tf, fn):
    return tf.keras.layers.Lambda(fn)


def conv(filters, kernel, strides=1, dilation=1, padding="same", activation=None, bias=True):
    def build(tf, shape):
        return _single(tf, shape, tf.keras.layers.Conv2D(
            filters, kernel, strides=strides, dilation_rate=dilation, padding=padding,
            activation=activation, use_bias=bias, bias_initializer="random_normal"))
    return build


def depthwise(kernel, multiplier, strides=1, dilation=1, padding="same", activation=None):
    def build(tf, shape):
        return _single(tf, shape, tf.keras.layers.DepthwiseConv2D(
            kernel, strides=strides, dilation_rate=dilation, padding=padding,
            depth_multiplier=multiplier, activation=activation,
            bias_initializer="random_normal"))
    return build


def dense(units, activation=None, bias=True):
    def build(tf, shape):
        return _single(tf, shape, tf.keras.layers.Dense(units, activation=activation,
                                                        use_bias=bias,
                                                        bias_initializer="random_normal"))
    return build


def pool(kind, size, strides, padding):
    def build(tf, shape):
        layer = tf.keras.layers.AveragePooling2D if kind == "avg" else tf.keras.layers.MaxPooling2D
        return _single(tf, shape, layer(size, strides=strides, padding=padding))
    return build


def layer(make):
    def build(tf, shape):
        return _single(tf, shape, make(tf))
    return build


def binary(shape2, fn):
    def build(tf, shape):
        return _binary(tf, shape, shape2, lambda a, b: _lambda(tf, lambda t: fn(tf, *t))([a, b]))
    return build


def const_binary(fn, const_shape, seed):
    def build(tf, shape):
        c = np.random.default_rng(seed).uniform(-2, 2, const_shape).astype(np.float32)
        return _single(tf, shape, _lambda(tf, lambda x: fn(tf, x, tf.constant(c))))
    return build


def concat(shapes, axis):
    def build(tf, shape):
        inputs = [tf.keras.Input(s, batch_size=1) for s in [shape] + shapes]
        y = tf.keras.layers.Concatenate(axis=axis)(inputs)
        return tf.keras.Model(inputs, y), [shape] + shapes
    return build


def requantize_concat(tf, shape):
    """CONCATENATION of LOGISTIC (output fixed at scale 1/256) and TANH (1/128): operands of one
    CONCATENATION share one quantization, so the converter requantizes them."""
    x = inp = tf.keras.Input(shape, batch_size=1)
    y = tf.keras.layers.Concatenate(axis=-1)([tf.keras.layers.Activation("sigmoid")(x),
                                              tf.keras.layers.Activation("tanh")(x)])
    return tf.keras.Model(inp, y), [shape]


def float_io_conv(tf, shape):
    return _single(tf, shape, tf.keras.layers.Conv2D(3, 3, padding="same", activation="relu"))


def float_io_softmax(tf, shape):
    return _single(tf, shape, tf.keras.layers.Dense(6), tf.keras.layers.Softmax())


# name -> (op under test, builder, input shape (no batch)[, options]); options: float_io (keep
# float32 model I/O), calib ((low, high): uniform calibration and samples instead of the
# default normal(0, 1.5)), unsupported (a substring of the compiler's refusal: the converter
# emits the op in a form the compiler refuses on purpose; the test checks the refusal).
MODELS = {
    "conv_3x3_same_relu": ("CONV_2D", conv(4, 3, activation="relu"), (8, 8, 3)),
    "conv_3x2_s2_valid_relu6": ("CONV_2D", conv(5, (3, 2), strides=2, padding="valid",
                                                 activation="relu6"), (9, 7, 2)),
    "conv_1x1": ("CONV_2D", conv(8, 1), (5, 5, 6)),
    "conv_5x5_s1x2_same_nobias": ("CONV_2D", conv(3, 5, strides=(1, 2), bias=False), (7, 9, 2)),
    "conv_dil2_same": ("CONV_2D", conv(3, 3, dilation=2), (10, 10, 2)),
    "conv_dil2x1_valid_relu": ("CONV_2D", conv(4, 3, dilation=(2, 1), padding="valid",
                                                activation="relu"), (9, 8, 3)),
    "dw_3x3_same_m1_relu": ("DEPTHWISE_CONV_2D", depthwise(3, 1, activation="relu"), (8, 8, 4)),
    "dw_3x3_s2_valid_m2": ("DEPTHWISE_CONV_2D", depthwise(3, 2, strides=2, padding="valid"),
                           (9, 9, 3)),
    "dw_5x3_same_m2_relu6": ("DEPTHWISE_CONV_2D", depthwise((5, 3), 2, activation="relu6"),
                             (7, 6, 2)),
    "dw_3x3_s2x1_same_m1": ("DEPTHWISE_CONV_2D", depthwise(3, 1, strides=(2, 1)), (6, 7, 5)),
    "dw_dil2_same_m1": ("DEPTHWISE_CONV_2D", depthwise(3, 1, dilation=2), (9, 10, 3)),
    "dw_dil3x2_valid_m2": ("DEPTHWISE_CONV_2D", depthwise(3, 2, dilation=(3, 2),
                                                           padding="valid"), (10, 9, 2)),
    "fc_16_10": ("FULLY_CONNECTED", dense(10), (16,)),
    "fc_24_12_relu": ("FULLY_CONNECTED", dense(12, "relu"), (24,)),
    "fc_nobias_relu6": ("FULLY_CONNECTED", dense(7, "relu6", bias=False), (20,)),
    "fc_3d": ("FULLY_CONNECTED", dense(6), (5, 8)),
    "add_two_inputs": ("ADD", binary((4, 4, 3), lambda tf, a, b: a + b), (4, 4, 3)),
    "add_broadcast_inputs_relu": ("ADD", binary((1, 5, 3), lambda tf, a, b: tf.nn.relu(a + b)),
                                  (4, 1, 3)),
    "add_const_channels": ("ADD", const_binary(lambda tf, x, c: x + c, (3,), 1), (4, 5, 3)),
    "mul_two_inputs": ("MUL", binary((3, 4, 2), lambda tf, a, b: a * b), (3, 4, 2)),
    "mul_broadcast_inputs": ("MUL", binary((1, 4, 5), lambda tf, a, b: a * b), (3, 4, 1)),
    "mul_const_channels_relu6": ("MUL", const_binary(lambda tf, x, c: tf.nn.relu6(x * c), (4,), 2),
                                 (3, 3, 4)),
    "avgpool_2x2_s2_valid": ("AVERAGE_POOL_2D", pool("avg", 2, 2, "valid"), (8, 8, 3)),
    "avgpool_3x3_s1_same": ("AVERAGE_POOL_2D", pool("avg", 3, 1, "same"), (5, 7, 2)),
    "avgpool_3x2_s2x1_same": ("AVERAGE_POOL_2D", pool("avg", (3, 2), (2, 1), "same"), (7, 5, 4)),
    "maxpool_2x2_s2_valid": ("MAX_POOL_2D", pool("max", 2, 2, "valid"), (8, 8, 3)),
    "maxpool_3x3_s1_same": ("MAX_POOL_2D", pool("max", 3, 1, "same"), (5, 7, 2)),
    "maxpool_2x3_s1x2_same": ("MAX_POOL_2D", pool("max", (2, 3), (1, 2), "same"), (6, 9, 3)),
    "reshape": ("RESHAPE", layer(lambda tf: tf.keras.layers.Reshape((6, 8))), (4, 6, 2)),
    "flatten_dense": ("RESHAPE", lambda tf, shape: _single(
        tf, shape, tf.keras.layers.Flatten(), tf.keras.layers.Dense(5)), (3, 3, 4)),
    "softmax_10": ("SOFTMAX", layer(lambda tf: tf.keras.layers.Softmax()), (10,)),
    "softmax_3d": ("SOFTMAX", layer(lambda tf: tf.keras.layers.Softmax()), (3, 7)),
    "quantize_conv_float_io": ("QUANTIZE", float_io_conv, (6, 6, 2), dict(float_io=True)),
    "dequantize_softmax_float_io": ("DEQUANTIZE", float_io_softmax, (12,), dict(float_io=True)),
    "requantize_concat": ("QUANTIZE", requantize_concat, (3, 4, 2)),
    "pad_zero_2d": ("PAD", layer(lambda tf: tf.keras.layers.ZeroPadding2D(((1, 2), (0, 1)))),
                    (4, 5, 3)),
    "pad_channels": ("PAD", layer(lambda tf: _lambda(
        tf, lambda x: tf.pad(x, [[0, 0], [0, 1], [2, 1]]))), (5, 4)),
    "padv2_constant": ("PADV2", layer(lambda tf: _lambda(
        tf, lambda x: tf.pad(x, [[0, 0], [1, 1], [2, 0], [0, 0]], constant_values=0.5))),
                       (3, 4, 2)),
    "concat_channels": ("CONCATENATION", concat([(4, 4, 3)], -1), (4, 4, 2)),
    "concat_height_3": ("CONCATENATION", concat([(1, 3, 2), (3, 3, 2)], 1), (2, 3, 2)),
    "mean_global": ("MEAN", layer(lambda tf: tf.keras.layers.GlobalAveragePooling2D()), (6, 6, 4)),
    "mean_keepdims": ("MEAN", layer(lambda tf: tf.keras.layers.GlobalAveragePooling2D(
        keepdims=True)), (5, 7, 3)),
    "logistic": ("LOGISTIC", layer(lambda tf: tf.keras.layers.Activation("sigmoid")), (4, 4, 3)),
    "logistic_after_dense": ("LOGISTIC", dense(8, "sigmoid"), (12,)),
    "tanh": ("TANH", layer(lambda tf: tf.keras.layers.Activation("tanh")), (4, 4, 3)),
    "tanh_after_conv": ("TANH", conv(3, 3, activation="tanh"), (5, 5, 2)),
    "hard_swish": ("HARD_SWISH", layer(lambda tf: tf.keras.layers.Activation("hard_swish")),
                   (4, 4, 3)),
    "relu": ("RELU", layer(lambda tf: tf.keras.layers.ReLU()), (4, 4, 3)),
    # TFLM's int8 RELU6 clamps the raw input bytes and ignores the output quantization; the
    # converter gives a standalone RELU6 the output range [0, min(max, 6)], which differs from
    # the input's unless the input is calibrated on [0, <= 6]: the compiler refuses the first.
    "relu6": ("RELU6", layer(lambda tf: tf.keras.layers.ReLU(max_value=6.0)), (4, 4, 3),
              dict(unsupported="must share scale and zero point")),
    "relu6_same_quantization": ("RELU6", layer(lambda tf: tf.keras.layers.ReLU(max_value=6.0)),
                                (4, 4, 3), dict(calib=(0.0, 5.5))),
    "leaky_relu_0_2": ("LEAKY_RELU", layer(lambda tf: tf.keras.layers.LeakyReLU(
        negative_slope=0.2)), (4, 4, 3)),
    "leaky_relu_0_01": ("LEAKY_RELU", layer(lambda tf: tf.keras.layers.LeakyReLU(
        negative_slope=0.01)), (2, 5, 4)),
}


def tflite_ops(schema, data):
    model = schema.Model.GetRootAsModel(data, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(model.OperatorCodesLength())]
    sg = model.Subgraphs(0)
    return [names.get(codes[sg.Operators(i).OpcodeIndex()], "?") for i in range(sg.OperatorsLength())]


def _draw(rng, shape, calib):
    if calib is None:
        return rng.normal(0, 1.5, shape).astype(np.float32)
    return rng.uniform(calib[0], calib[1], shape).astype(np.float32)


def convert(tf, model, shapes, float_io, rng, calib=None):
    """Full-integer PTQ calibrated on seeded data (normal(0, 1.5), or uniform over `calib`)."""
    calib = [[_draw(rng, (1,) + tuple(s), calib) for s in shapes] for _ in range(CALIBRATION)]

    def representative():
        yield from calib

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def samples(data, rng, calib=None):
    """SAMPLES seeded inputs per model input (in the model's input order, which need not be
    the Keras model's), quantized with the input's parameters."""
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    out = []
    for detail in Interpreter(model_content=data).get_input_details():
        x = _draw(rng, (SAMPLES,) + tuple(detail["shape"]), calib)
        if detail["dtype"] == np.int8:
            scale, zp = detail["quantization"]
            x = np.clip(np.round(x / scale) + zp, -128, 127).astype(np.int8)
        out.append(x)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("only", nargs="*", help="model names to rebuild (default: all)")
    args = parser.parse_args(argv)
    tf = _import_tf()
    try:
        from ai_edge_litert import schema_py_generated as schema  # noqa: PLC0415
    except ImportError:
        from tensorflow.lite.python import schema_py_generated as schema  # noqa: PLC0415
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    failed = []
    for name, spec in MODELS.items():
        if args.only and name not in args.only:
            continue
        op, build, shape = spec[:3]
        options = spec[3] if len(spec) > 3 else {}
        float_io, calib = options.get("float_io", False), options.get("calib")
        seed = SEED + zlib.crc32(name.encode())  # stable when models are added or removed
        tf.keras.utils.set_random_seed(seed % 2 ** 31)
        model, shapes = build(tf, shape)
        rng = np.random.default_rng(seed)
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its signature
            data = convert(tf, model, shapes, float_io, rng, calib)
        ops = tflite_ops(schema, data)
        if op not in ops:
            failed.append("%s: the converter emitted %s, without %s" % (name, ops, op))
            continue
        (out / (name + ".tflite")).write_bytes(data)
        for i, x in enumerate(samples(data, rng, calib)):
            np.save(out / ("%s.in%d.npy" % (name, i)), x)
        manifest[name] = dict(op=op, ops=ops, float_io=bool(float_io))
        if "unsupported" in options:
            manifest[name]["unsupported"] = options["unsupported"]
        print("%-30s %6d bytes  %s" % (name, len(data), " ".join(ops)))
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")
    if failed:
        sys.exit("\n".join(failed))


if __name__ == "__main__":
    main()
