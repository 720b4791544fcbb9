#!/usr/bin/env python3
"""Regenerate the converter-made .tflite test fixtures in tests/fixtures/.

Usage:
    python tools/make_fixtures.py [--out tests/fixtures]

Needs TensorFlow (the optional ``zoo`` extra); the tests themselves do not:
they read the committed files. Each fixture is a tiny Keras model converted
with full-integer post-training quantization (int8 weights, activations and
I/O), exactly as a user's converter run would emit it, so the tests see the
patterns real models carry:

  flatten_int8.tflite            Conv2D -> Flatten -> Dense with a dynamic batch:
                                 SHAPE -> STRIDED_SLICE -> PACK feeds RESHAPE's shape.
  dilated_conv_same_int8.tflite  Conv2D(dilation_rate=2, padding="same") lowered to
                                 SPACE_TO_BATCH_ND -> CONV_2D(VALID) -> BATCH_TO_SPACE_ND
                                 with crops.
  dilated_conv_valid_int8.tflite The same with padding="valid" (no paddings, no crops).
  dilated_depthwise_int8.tflite  DepthwiseConv2D(dilation_rate=(2, 3), padding="same"):
                                 the pattern around DEPTHWISE_CONV_2D, unequal dilations.

Weights and calibration data come from fixed seeds; rerunning with the same
TensorFlow version rewrites the same bytes.
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
SEED = 0


def _import_tf():
    try:
        import tensorflow as tf  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on environment
        sys.exit("make_fixtures.py needs TensorFlow: pip install -e .[zoo]\n(%s)" % exc)
    return tf


def _convert_int8(tf, model, input_shape):
    """Full-integer PTQ with int8 input and output, calibrated on seeded normal data."""
    import numpy as np  # noqa: PLC0415

    rng = np.random.default_rng(SEED)
    samples = [rng.standard_normal((1,) + input_shape).astype(np.float32) for _ in range(16)]

    def representative():
        for x in samples:
            yield [x]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def _flatten(tf):
    x = inp = tf.keras.Input((4, 4, 3))  # batch dimension left dynamic (None)
    x = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(5)(x)
    return tf.keras.Model(inp, x), (4, 4, 3)


def _dilated_conv(padding):
    def build(tf):
        x = inp = tf.keras.Input((9, 9, 2))
        x = tf.keras.layers.Conv2D(3, 3, dilation_rate=2, padding=padding)(x)
        return tf.keras.Model(inp, x), (9, 9, 2)
    return build


def _dilated_depthwise(tf):
    x = inp = tf.keras.Input((9, 10, 3))
    x = tf.keras.layers.DepthwiseConv2D(3, dilation_rate=(2, 3), padding="same")(x)
    return tf.keras.Model(inp, x), (9, 10, 3)


FIXTURES = {
    "flatten_int8.tflite": _flatten,
    "dilated_conv_same_int8.tflite": _dilated_conv("same"),
    "dilated_conv_valid_int8.tflite": _dilated_conv("valid"),
    "dilated_depthwise_int8.tflite": _dilated_depthwise,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent
                                             / "tests" / "fixtures"))
    args = parser.parse_args(argv)
    tf = _import_tf()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, build in FIXTURES.items():
        tf.keras.utils.set_random_seed(SEED)
        model, input_shape = build(tf)
        data = _convert_int8(tf, model, input_shape)
        (out / name).write_bytes(data)
        print("%s: %d bytes" % (out / name, len(data)))


if __name__ == "__main__":
    main()
