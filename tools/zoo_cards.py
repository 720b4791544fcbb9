"""Add the SDK's own figures to every zoo model card, between markers (re-runnable).

    python tools/zoo_cards.py

For each model_zoo/NAME: the SDK's int8 quantization of float.tflite (default method,
calibrated on the first half of test.npz) next to float and TensorFlow's PTQ on the same
calibration samples, on the held-out half (tools/quant_compare.py; TensorFlow from
$NPU_TF_PYTHON), and the compiled int8.tflite's blob size, arena, MACs and TFLite Micro's
planned arena head. build_zoo.py rewrites the cards: run this after it.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from bench import tflm_head_bytes  # noqa: E402
from quant_compare import compare, tf_python  # noqa: E402

from npu_sdk import compiler, quantize, report  # noqa: E402

BEGIN, END = "<!-- npu-sdk figures: begin -->", "<!-- npu-sdk figures: end -->"


def section(model_dir, python):
    q = compare(model_dir, (quantize.DEFAULT_METHOD,), python)
    sdk, tf = q["sdk"][0], q["tf"]
    name = {"accuracy": "accuracy", "roc_auc": "ROC AUC (reconstruction error)"}[q["metric"]]
    tf_cells = ("%.2f" % tf["metric"], "%.2f dB" % tf["sqnr_db"]) if tf else ("-", "-")
    int8 = model_dir / "int8.tflite"
    c = compiler.compile_file(int8)
    totals = report.report(c.blob)["totals"]
    lines = [BEGIN, "## npu-sdk figures", "",
             "Written by `python tools/zoo_cards.py` (quantization: `tools/quant_compare.py`). The SDK "
             "(method `%s`) and TensorFlow's converter (full-int8 PTQ) calibrate on the same first half "
             "of `test.npz` (%d samples); figures on the other half (%d samples), in points; int8 models "
             "run in TFLite Micro, the SDK's bit-exact on the emulator: %s."
             % (sdk["method"], q["calibration"], q["held_out"], "yes" if sdk["bit_exact"] else "NO"), "",
             "| | float | TF PTQ | SDK int8 |", "|---|---|---|---|",
             "| %s | %.2f | %s | %.2f |" % (name, q["float"], tf_cells[0], sdk["metric"]),
             "| output SQNR vs float | - | %s | %.2f dB |" % (tf_cells[1], sdk["sqnr_db"])]
    if q["tf_note"]:
        lines += ["", "TF PTQ " + q["tf_note"] + "."]
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
