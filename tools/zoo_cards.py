"""Add the SDK's own figures to every zoo model card, between markers (re-runnable).

    python tools/zoo_cards.py

For each model_zoo/NAME: the SDK's int8 quantization of float.tflite (default method,
calibrated on the first half of test.npz) next to float and TensorFlow's PTQ on the held-out
half (tools/quant_compare.py), and the compiled int8.tflite's blob size, arena, MACs and
TFLite Micro's planned arena head. build_zoo.py rewrites the cards: run this after it.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from bench import tflm_head_bytes  # noqa: E402
from quant_compare import compare  # noqa: E402

from npu_sdk import compiler, quantize, report  # noqa: E402

BEGIN, END = "<!-- npu-sdk figures: begin -->", "<!-- npu-sdk figures: end -->"


def section(model_dir):
    q = compare(model_dir)
    rows = {r["variant"]: r for r in q["rows"]}
    tf = next(r for name, r in rows.items() if name.startswith("TF PTQ (zoo"))
    sdk = rows["SDK %s" % quantize.DEFAULT_METHOD]
    classifier = rows["float"]["accuracy"] > 0  # the autoencoder's output is a reconstruction
    int8 = model_dir / "int8.tflite"
    c = compiler.compile_file(int8)
    totals = report.report(c.blob)["totals"]
    lines = [BEGIN, "## npu-sdk figures", "",
             "Written by `python tools/zoo_cards.py`. Quantization: held-out half of `test.npz` "
             "(%d samples); the SDK calibrates on the other half (%d samples, method `%s`), "
             "TensorFlow's PTQ is the committed `int8_float_io.tflite`."
             % (q["held_out"], q["calibration"], quantize.DEFAULT_METHOD), "",
             "| | float | TF int8 | SDK int8 |", "|---|---|---|---|"]
    if classifier:
        lines.append("| accuracy | %.4f | %.4f | %.4f |" % (rows["float"]["accuracy"], tf["accuracy"],
                                                         sdk["accuracy"]))
    lines += ["| output SQNR vs float | - | %.2f dB | %.2f dB |" % (tf["sqnr_db"], sdk["sqnr_db"]), "",
              "Compiled `int8.tflite`: blob %d bytes (%.2fx the .tflite), arena %d bytes "
              "(TFLite Micro's planned head: %s bytes), %d MACs per inference."
              % (len(c.blob), len(c.blob) / int8.stat().st_size, c.arena_size,
                 tflm_head_bytes(int8), totals["macs"]), END]
    return "\n".join(lines)


def main():
    for card in sorted((ROOT / "model_zoo").glob("*/README.md")):
        text = card.read_text()
        text = re.sub(r"\n*%s.*?%s\n?" % (re.escape(BEGIN), re.escape(END)), "\n", text, flags=re.S)
        card.write_text(text.rstrip("\n") + "\n\n" + section(card.parent) + "\n")
        print("updated", card.relative_to(ROOT))


if __name__ == "__main__":
    main()
