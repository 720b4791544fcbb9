"""The SDK's post-training quantization vs TensorFlow's, like for like, model by model.

    python tools/quant_compare.py [--json] [--tf-python PATH] [--models a,b] [--methods m1,m2]

For every model_zoo/<name>/ with a float.tflite and a test.npz: the first half
of test.npz calibrates, the second half is held out. On the held-out half:

- float: float.tflite in LiteRT;
- TF PTQ: TensorFlow's converter, full-int8 with float I/O, calibrated on the
  SAME samples (tools/tf_ptq.py: the float graph rebuilt in TF from its
  weights and checked against float.tflite first), run in TFLite Micro;
- SDK <method>: npu_sdk.quantize with each range method (float I/O), run in
  TFLite Micro, and compiled and run on the emulator's CPython core
  (npufw.interp + the C kernels): "bit-exact" is emulator == TFLite Micro on
  every held-out sample ("TF bit-exact": the same for TF's model);
- with --activations int8,int16 the same again for 16x8 (int16 activations, int8
  weights): TF's 16x8 converter mode and the SDK's `activations="int16"`; "mixed": the
  SDK's int8 model with its worst-SQNR layers 16x8 (per-layer overrides, no TF column).

Task metric: top-1 accuracy for classifiers; for an autoencoder (output shaped
like its input: anomaly_ae) ROC AUC of the anomaly score, the mean squared
reconstruction error, against test.npz's y (1 = anomaly). Both are in points
(x100). SQNR is of the model output against the float model's, in dB.
Targets (issue #7): SDK >= TF - 0.3 pt, SDK >= float - 1 pt, SQNR >= TF's - 1 dB,
bit-exact.

TensorFlow is optional: tools/tf_ptq.py runs under --tf-python, else $NPU_TF_PYTHON,
else this interpreter if it has TensorFlow; without one, TF's columns say
"not measured: TensorFlow not installed".
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from npu_sdk import compiler, quantize, reference, tflite, tflite_writer  # noqa: E402

TARGET_VS_TF_PT = -0.3
TARGET_VS_FLOAT_PT = -1.0
TARGET_SQNR_VS_TF_DB = -1.0
NO_TF = "not measured: TensorFlow not installed"


# --- TensorFlow's PTQ, in whichever interpreter has TensorFlow -------------------------

def tf_python(option=None):
    """The interpreter to run tools/tf_ptq.py with, or None when none has TensorFlow."""
    chosen = option or os.environ.get("NPU_TF_PYTHON")
    if chosen:
        return chosen
    return sys.executable if importlib.util.find_spec("tensorflow") is not None else None


def tf_ptq(python, float_path, calib, check, activations="int8"):
    """(TF PTQ .tflite bytes, info) or (None, 'not measured: why'); int8, or 16x8 with
    activations="int16"."""
    if python is None:
        return None, NO_TF
    with tempfile.TemporaryDirectory() as tmp:
        c, k, out = (Path(tmp) / n for n in ("calib.npy", "check.npy", "tf_int8.tflite"))
        np.save(c, calib)
        np.save(k, check)
        proc = subprocess.run([python, str(ROOT / "tools" / "tf_ptq.py"), str(float_path), str(c), str(out),
                               "--check", str(k)] + (["--int16"] if activations == "int16" else []),
                              capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0 or not out.exists():
            why = (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]
            return None, "not measured: " + why
        return out.read_bytes(), json.loads(proc.stdout.strip().splitlines()[-1])


# --- running and scoring -----------------------------------------------------------------

def run_litert(model_bytes, xs):
    interpreter = reference.litert_interpreter(model_bytes)
    return np.stack([reference.run_litert(model_bytes, [x], interpreter=interpreter)[0].ravel() for x in xs])


def run_tflm(model_bytes, xs):
    interpreter = reference.tflm_interpreter(model_bytes)
    return np.stack([reference.run_tflm(model_bytes, [x], interpreter)[0].ravel() for x in xs])


def run_emulator(graph, xs):
    """The int8 graph compiled and run by the emulator's CPython core (firmware interpreter, C kernels)."""
    from npu_emulator import _kernels
    from npufw.interp import Model

    board = Model(compiler.compile_graph(graph).blob, _kernels)
    x_t, y_t = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    outs = []
    for x in xs:
        board.set_input(0, np.asarray(x, dtype=x_t.dtype).reshape(x_t.shape).tobytes())
        board.invoke()
        outs.append(np.frombuffer(bytes(board.output(0)), dtype=y_t.dtype).copy())
    return np.stack(outs)


def _tf_bit_exact(tf_bytes, xs, tf_out):
    """Whether TF's model, compiled by the SDK, runs on the emulator as in TFLite Micro (None:
    the compiler refuses it)."""
    try:
        return bool(np.array_equal(run_emulator(tflite.parse(tf_bytes), xs), tf_out))
    except Exception:  # noqa: BLE001 - an unsupported model is a figure here, not an error
        return None


def roc_auc(y, score):
    """ROC AUC = P(score of an anomaly > score of a normal sample), ties counting half
    (the Mann-Whitney U statistic over average ranks)."""
    y, score = np.asarray(y).astype(bool), np.asarray(score, np.float64)
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    for v in np.unique(score):  # average ranks over ties
        tie = score == v
        ranks[tie] = ranks[tie].mean()
    pos, neg = int(y.sum()), int((~y).sum())
    return (ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg)


def task(graph):
    """('roc_auc', scorer) for an autoencoder (output shaped like its input), else ('accuracy', ...)."""
    x_t, y_t = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    if int(np.prod(x_t.shape)) == int(np.prod(y_t.shape)):
        def auc(outs, x, y):
            return 100.0 * float(roc_auc(y, np.mean((outs - x.reshape(len(x), -1)) ** 2, axis=1)))
        return "roc_auc", auc
    return "accuracy", lambda outs, x, y: 100.0 * float(np.mean(outs.argmax(axis=1) == y))


# --- one model ---------------------------------------------------------------------------

#: activations="mixed": the int8 model with its MIXED_LAYERS worst-SQNR layers 16x8
MIXED_LAYERS = 2
ACTIVATIONS = quantize.ACTIVATIONS + ("mixed",)


def mixed_overrides(graph, calib, method):
    """{"#i": {"activations": "int16"}} for the MIXED_LAYERS layers of the int8 model whose
    output SQNR is worst (quantize_with_report's report) and that have a 16x8 kernel."""
    from npu_sdk import ops
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", quantize.CalibrationWarning)
        rows = quantize.quantize_with_report(graph, calib, method=method).report
    worst = [r for r in rows if r["index"] >= 0 and ops.OPS[r["op"]].int16][:MIXED_LAYERS]
    return {"#%d" % r["index"]: {"activations": "int16"} for r in worst}


def compare(model_dir, methods=quantize.METHODS, python=None, activations="int8"):
    """Float, TF PTQ and SDK figures for one zoo model (see the module doc), int8, 16x8
    (activations="int16"), or int8 with its worst layers 16x8 ("mixed": no TF column, its
    converter has no per-layer mix); plain data."""
    model_dir = Path(model_dir)
    d = np.load(model_dir / "test.npz")
    half = len(d["x"]) // 2
    calib, x, y = d["x"][:half], d["x"][half:], d["y"][half:]
    float_path = model_dir / "float.tflite"
    graph = tflite.load(float_path)
    metric, score = task(graph)
    float_out = run_litert(float_path.read_bytes(), x)
    result = dict(model=model_dir.name, activations=activations, metric=metric,
                  calibration=len(calib), held_out=len(x), float=score(float_out, x, y), tf=None,
                  tf_note=None, sdk=[])
    tf_bytes, info = ((None, "not measured: TensorFlow's converter has no per-layer mix")
                      if activations == "mixed" else tf_ptq(python, float_path, calib, x, activations))
    tf_out = None
    if tf_bytes is None:
        result["tf_note"] = info
    else:
        tf_out = run_tflm(tf_bytes, x)
        result["tf"] = dict(metric=score(tf_out, x, y), sqnr_db=quantize.sqnr_db(float_out, tf_out),
                            bit_exact=_tf_bit_exact(tf_bytes, x, tf_out), **info)
    for method in methods:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", quantize.CalibrationWarning)
            if activations == "mixed":
                g = quantize.quantize(graph, calib, method=method,
                                      overrides=mixed_overrides(graph, calib, method))
            else:
                g = quantize.quantize(graph, calib, method=method, activations=activations)
        out = run_tflm(tflite_writer.write(g), x)
        row = dict(method=method, default=method == quantize.DEFAULT_METHOD,
                   metric=score(out, x, y), sqnr_db=quantize.sqnr_db(float_out, out),
                   bit_exact=bool(np.array_equal(run_emulator(g, x), out)))
        if tf_out is not None:
            row["same_as_tf"] = float(np.mean(np.all(out == tf_out, axis=1)))
        row.update(targets(result, row))
        result["sdk"].append(row)
    return result


def targets(result, row):
    """The issue's targets for one SDK row: {name: True/False, or None when TF was not measured}."""
    tf = result["tf"]
    return dict(
        pass_vs_tf=None if tf is None else bool(row["metric"] - tf["metric"] >= TARGET_VS_TF_PT - 1e-9),
        pass_vs_float=bool(row["metric"] - result["float"] >= TARGET_VS_FLOAT_PT - 1e-9),
        pass_sqnr=None if tf is None else bool(_db(row["sqnr_db"]) - _db(tf["sqnr_db"]) >= TARGET_SQNR_VS_TF_DB))


def _db(v):
    return float("inf") if v is None else v  # None: identical to float


# --- the table ---------------------------------------------------------------------------

COLUMNS = ("model", "act", "method", "calib n", "held-out n", "metric", "float", "TF PTQ", "SDK", "SDK-TF",
           "SDK-float", "SQNR TF", "SQNR SDK", "dSQNR", "bit-exact", "TF bit-exact", ">=TF-0.3", ">=float-1",
           "SQNR>=TF-1")


def table_rows(results):
    """One row of strings per (model, SDK method), in COLUMNS order; '-' where not measured."""
    def num(v, fmt):
        return "-" if v is None else fmt % (round(v, 2) + 0.0)  # no "-0.00"

    def verdict(v):
        return "-" if v is None else ("PASS" if v else "FAIL")

    rows = []
    for r in results:
        tf = r["tf"] or {}
        for s in r["sdk"]:
            tf_metric, tf_sqnr = tf.get("metric"), tf.get("sqnr_db")
            rows.append([
                r["model"], {"int16": "16x8", "mixed": "mix"}.get(r.get("activations"), "int8"),
                s["method"] + (" *" if s.get("default") else ""),
                str(r["calibration"]), str(r["held_out"]), r["metric"],
                num(r["float"], "%.2f"), num(tf_metric, "%.2f"), num(s["metric"], "%.2f"),
                num(None if tf_metric is None else s["metric"] - tf_metric, "%+.2f"),
                num(s["metric"] - r["float"], "%+.2f"),
                num(tf_sqnr, "%.2f"), num(s["sqnr_db"], "%.2f"),
                num(None if tf_sqnr is None else _db(s["sqnr_db"]) - tf_sqnr, "%+.2f"),
                "yes" if s["bit_exact"] else "NO",
                {None: "-", True: "yes", False: "NO"}[tf.get("bit_exact")],
                verdict(s["pass_vs_tf"]), verdict(s["pass_vs_float"]), verdict(s["pass_sqnr"])])
    return rows


def notes(results):
    out = ["Calibration: first half of each model's test.npz, the same samples for TF and the SDK; "
           "figures on the other half. metric in points (x100): accuracy = top-1 accuracy; roc_auc = "
           "ROC AUC of the reconstruction error as anomaly score. Float in LiteRT, TF PTQ and SDK int8 "
           "models in TFLite Micro; SQNR of the output vs float, dB; bit-exact = the emulator's output "
           "equals TFLite Micro's on every held-out sample (TF bit-exact: for TF's model compiled by the "
           "SDK); act 16x8 = int16 activations, int8 weights (TF: its 16x8 converter mode); mix = the "
           "int8 model with its %d worst-SQNR layers 16x8 (overrides). * = the SDK's default method."
           % MIXED_LAYERS]
    out += ["%s: TF PTQ %s" % (r["model"], r["tf_note"]) for r in results if r["tf_note"]]
    return out


def format_text(results):
    rows = [list(COLUMNS)] + table_rows(results)
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.rjust(w) if k >= 3 else c.ljust(w) for k, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    return "\n".join(lines[:1] + ["-" * len(lines[0])] + lines[1:] + [""] + notes(results))


def format_markdown(results):
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    return "\n".join(lines + [""] + notes(results))


def summary(results):
    """The targets for the default method over all models: worst margins and whether all pass."""
    rows = [(r, s) for r in results for s in r["sdk"] if s.get("default")
            and r.get("activations", "int8") == "int8"]
    method = rows[0][1]["method"] if rows else None
    measured = [(r, s) for r, s in rows if r["tf"] is not None]
    out = dict(quant_method=method, quant_models=len(rows), quant_models_with_tf=len(measured),
               quant_bit_exact_all=all(s["bit_exact"] for _, s in rows),
               quant_sdk_minus_float_pt_min=min((s["metric"] - r["float"] for r, s in rows), default=None))
    if measured:
        out["quant_sdk_minus_tf_pt_min"] = min(s["metric"] - r["tf"]["metric"] for r, s in measured)
        out["quant_sqnr_minus_tf_db_min"] = min(_db(s["sqnr_db"]) - r["tf"]["sqnr_db"] for r, s in measured)
    checks = [s[k] for _, s in rows for k in ("pass_vs_tf", "pass_vs_float", "pass_sqnr")]
    out["quant_targets_met"] = (None if not rows or any(c is None for c in checks)
                                else all(checks) and out["quant_bit_exact_all"])
    out.update(summary_16x8(results))
    return out


def summary_16x8(results):
    """16x8 (issue 16) for the default method: bit-exact everywhere, the worst SDK 16x8 - TF
    16x8 and 16x8 - float margins (points), the smallest SQNR gain of 16x8 over int8 (dB)."""
    def default(r):
        return next((s for s in r["sdk"] if s.get("default")), None)

    int8 = {r["model"]: default(r) for r in results if r.get("activations", "int8") == "int8"}
    rows = [(r, default(r)) for r in results if r.get("activations") == "int16" and default(r)]
    if not rows:
        return {}
    out = dict(quant16_models=len(rows), quant16_bit_exact_all=all(s["bit_exact"] for _, s in rows),
               quant16_sdk_minus_float_pt_min=min(s["metric"] - r["float"] for r, s in rows))
    measured = [(r, s) for r, s in rows if r["tf"] is not None]
    if measured:
        out["quant16_sdk_minus_tf16_pt_min"] = min(s["metric"] - r["tf"]["metric"] for r, s in measured)
        out["quant16_sqnr_minus_tf16_db_min"] = min(_db(s["sqnr_db"]) - r["tf"]["sqnr_db"]
                                                    for r, s in measured)
    gains = [_db(s["sqnr_db"]) - _db(int8[r["model"]]["sqnr_db"]) for r, s in rows
             if int8.get(r["model"])]
    if gains:
        out["quant16_sqnr_minus_int8_db_min"] = min(gains)
    return out


def zoo_dirs(zoo, names=None):
    dirs = sorted(m for m in Path(zoo).iterdir() if (m / "float.tflite").exists() and (m / "test.npz").exists())
    return [m for m in dirs if not names or m.name in names]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo", default=str(ROOT / "model_zoo"))
    p.add_argument("--models", help="comma-separated zoo model names (default: every float model)")
    p.add_argument("--methods", default=",".join(quantize.METHODS), help="SDK range methods to compare")
    p.add_argument("--tf-python", help="a Python with TensorFlow for TF's PTQ (default: $NPU_TF_PYTHON, "
                                       "else this one if it has TensorFlow)")
    p.add_argument("--activations", default="int8",
                   help="int8, int16 (16x8), mixed (int8 with its %d worst-SQNR layers 16x8), or "
                        "several, comma-separated" % MIXED_LAYERS)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args()
    methods = args.methods.split(",")
    bad = [m for m in methods if m not in quantize.METHODS]
    if bad:
        p.error("unknown method %s; choose from %s" % (", ".join(bad), ", ".join(quantize.METHODS)))
    dirs = zoo_dirs(args.zoo, args.models.split(",") if args.models else None)
    if not dirs:
        p.error("no zoo model with float.tflite and test.npz in %s" % args.zoo)
    python = tf_python(args.tf_python)
    acts = args.activations.split(",")
    if any(a not in ACTIVATIONS for a in acts):
        p.error("--activations takes %s" % ", ".join(ACTIVATIONS))
    results = [compare(m, methods, python, a) for m in dirs for a in acts]
    if args.json:
        print(json.dumps(dict(results=results, summary=summary(results)), indent=1))
    else:
        print(format_text(results))
        print("\n" + json.dumps(summary(results)))


if __name__ == "__main__":
    main()
