"""Add the SDK's own figures to every zoo model card, between markers (re-runnable), and
write each model's 16x8 model, int16x8.tflite.

    python tools/zoo_cards.py

For each model_zoo/NAME: the SDK's int8 and 16x8 quantization of float.tflite (default
method, calibrated on the first half of test.npz) next to float and TensorFlow's PTQ (full
int8, and 16x8) on the same calibration samples, on the held-out half
(tools/quant_compare.py; TensorFlow from $NPU_TF_PYTHON), and the compiled int8.tflite's blob
size, arena, MACs and TFLite Micro's planned arena head. int16x8.tflite is TensorFlow's 16x8
model (float I/O) where TensorFlow is installed, else the SDK's (the card says which); the
card gives its compiled size and whether the emulator runs it bit-exact with TFLite Micro.
build_zoo.py rewrites the cards: run this after it.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import numpy as np  # noqa: E402
from bench import tflm_head_bytes  # noqa: E402
from quant_compare import compare, run_emulator, run_tflm, tf_ptq, tf_python  # noqa: E402

from npu_sdk import compiler, quantize, report, tflite, tflite_writer  # noqa: E402

BEGIN, END = "<!-- npu-sdk figures: begin -->", "<!-- npu-sdk figures: end -->"


def write_16x8(model_dir, python):
    """int16x8.tflite: TensorFlow's 16x8 PTQ of float.tflite (calibrated on the first half of
    test.npz), else the SDK's; returns who made it and whether the emulator's CPython core
    runs it bit-exact with TFLite Micro on the held-out half."""
    d = np.load(model_dir / "test.npz")
    half = len(d["x"]) // 2
    calib, x = d["x"][:half], d["x"][half:]
    data, _ = tf_ptq(python, model_dir / "float.tflite", calib, x, "int16")
    maker = "TensorFlow's converter (16x8)"
    if data is None:
        graph = quantize.quantize(tflite.load(model_dir / "float.tflite"), calib,
                                  activations="int16")
        data, maker = tflite_writer.write(graph), "the SDK's quantizer (`--activations int16`)"
    (model_dir / "int16x8.tflite").write_bytes(data)
    exact = np.array_equal(run_emulator(tflite.parse(data), x), run_tflm(data, x))
    return maker, exact, len(compiler.compile_graph(tflite.parse(data)).blob), len(x)


def section(model_dir, python):
    q = compare(model_dir, (quantize.DEFAULT_METHOD,), python)
    q16 = compare(model_dir, (quantize.DEFAULT_METHOD,), python, "int16")
    sdk, tf = q["sdk"][0], q["tf"]
    sdk16, tf16 = q16["sdk"][0], q16["tf"]
    name = {"accuracy": "accuracy", "roc_auc": "ROC AUC (reconstruction error)"}[q["metric"]]
    tf_cells = ("%.2f" % tf["metric"], "%.2f dB" % tf["sqnr_db"]) if tf else ("-", "-")
    tf16_cells = ("%.2f" % tf16["metric"], "%.2f dB" % tf16["sqnr_db"]) if tf16 else ("-", "-")
    maker, exact, blob16, n16 = write_16x8(model_dir, python)
    int8 = model_dir / "int8.tflite"
    c = compiler.compile_file(int8)
    totals = report.report(c.blob)["totals"]
    lines = [BEGIN, "## npu-sdk figures", "",
             "Written by `python tools/zoo_cards.py` (quantization: `tools/quant_compare.py`). The SDK "
             "(method `%s`) and TensorFlow's converter (full-int8 PTQ) calibrate on the same first half "
             "of `test.npz` (%d samples); figures on the other half (%d samples), in points; int8 models "
             "run in TFLite Micro, the SDK's bit-exact on the emulator: %s."
             % (sdk["method"], q["calibration"], q["held_out"], "yes" if sdk["bit_exact"] else "NO"), "",
             "| | float | TF PTQ | SDK int8 | TF 16x8 | SDK 16x8 |", "|---|---|---|---|---|---|",
             "| %s | %.2f | %s | %.2f | %s | %.2f |" % (name, q["float"], tf_cells[0], sdk["metric"],
                                                    tf16_cells[0], sdk16["metric"]),
             "| output SQNR vs float | - | %s | %.2f dB | %s | %.2f dB |"
             % (tf_cells[1], sdk["sqnr_db"], tf16_cells[1], sdk16["sqnr_db"])]
    if q["tf_note"]:
        lines += ["", "TF PTQ " + q["tf_note"] + "."]
    lines += ["", "16x8 (int16 activations, int8 weights): SDK 16x8 bit-exact on the emulator: %s. "
              "`int16x8.tflite` is %s with float I/O; compiled: blob %d bytes; the emulator's "
              "output equals TFLite Micro's on all %d held-out samples: %s."
              % ("yes" if sdk16["bit_exact"] else "NO", maker, blob16, n16, "yes" if exact else "NO")]
    lines += ["", "Compiled `int8.tflite`: blob %d bytes (%.2fx the .tflite), arena %d bytes "
              "(TFLite Micro's planned head: %s bytes), %d MACs per inference."
              % (len(c.blob), len(c.blob) / int8.stat().st_size, c.arena_size,
                 tflm_head_bytes(int8), totals["macs"]), END]
    return "\n".join(lines)


def main():
    python = tf_python()  # TF PTQ with $NPU_TF_PYTHON, else this interpreter if it has TensorFlow
    for card in sorted((ROOT / "model_zoo").glob("*/README.md")):
        text = card.read_text()
        text = re.sub(r"\n*%s.*?%s\n?" % (re.escape(BEGIN), re.escape(END)), "\n", text, flags=re.S)
        card.write_text(text.rstrip("\n") + "\n\n" + section(card.parent, python) + "\n")
        print("updated", card.relative_to(ROOT))


if __name__ == "__main__":
    main()
