"""Instructions per inference on the qemu boards, viper kernels vs the native npu module.

    python tools/bench_icount.py [--quick] [--json]

Each qemu image (mps2-an386 Cortex-M4, mps3-an547 Cortex-M55) runs under QEMU's
`-icount shift=0` (`npu emulate --icount`): the board's microsecond is 1,000 executed
instructions, so `npu run`'s board times are instruction counts, whatever the host's load
(to the board clock's tick: 1,000 instructions). For every zoo model (int8 and 16x8), MLPerf-Tiny-class
graph (tools/bench_kernels.py), with `--kernels viper` and with the image's native module:
instructions per inference and per op, MACs per instruction, outputs bit-exact with TFLite
Micro; the firmware's fixed cost per op (the slope over chains of 1 and 65 FC ops of one
input and one output); and
the published MLPerf Tiny v1.1 latencies on the NUCLEO-L4R5ZI (Cortex-M4, 120 MHz) in cycles
(ms x 120,000). Instructions are a lower bound on an in-order Cortex-M4's cycles (one
instruction takes at least one cycle): a comparison, not a measurement of that board.

--quick (CI): the zoo's models without convolutions (the viper runs of the convolutional
ones take minutes) and the op chains only. The native module has CMSIS-NN's kernels
when $CMSIS_NN_DIR is set (the Makefile sets it to ../shared/cmsis-nn where that exists).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]
from tools.testbed import Emulator  # noqa: E402

TARGETS = ("mps2-an386", "mps3-an547")
KERNELS = ("viper", "native")
#: MLPerf Tiny v1.1, NUCLEO-L4R5ZI (Cortex-M4 at 120 MHz), ms: TFLite Micro reference kernels
#: (v0.5 reference submission), X-CUBE-AI 8.0, microTVM + CMSIS-NN (issue 14)
MLPERF_MS = {"kws": (181.9, 72.7, 99.8), "vww": (600.6, 221.1, 300.8),
             "resnet8": (704.2, 222.0, 389.6), "ae": (10.05, 7.58, 8.6)}
CYCLES_PER_MS = 120_000
# the targets, on the Cortex-M4 image
NATIVE_OVER_VIPER = 20  # at least 20x fewer instructions on every convolutional model
XCUBE_WITHIN = 1.5  # at most 1.5x X-CUBE-AI's cycles
FIXED_COST_MAX = 3000  # instructions per op
CHAIN = (1, 65)  # op counts of the tiny-op chains


def tiny_chain(ops):
    """`ops` FULLY_CONNECTED layers of one input and one output: next to nothing for a kernel
    to do, so the slope over the op count is the firmware's fixed cost per op."""
    import bench_kernels
    n = bench_kernels._Net("tiny%d" % ops, (1, 1), 5)
    x = 0
    for _ in range(ops):
        x = n.fc(x, 1)
    return n.graph(x)


def cases(quick):
    """[(name, model bytes, macs, convolutional)]: the zoo, MLPerf-Tiny-class graphs, chains."""
    import bench_kernels

    from npu_sdk import tflite
    out = []
    # the zoo's int8 models, then its 16x8 ones (int16 activations: npufw.kernels16 in viper)
    for pattern, suffix in (("*/int8.tflite", ""), ("*/int16x8.tflite", "/16x8")):
        for path in sorted((ROOT / "model_zoo").glob(pattern)):
            data = path.read_bytes()
            g = tflite.parse(data)
            conv = any(op.kind == "CONV_2D" for op in g.ops)
            if not (quick and conv):
                out.append((path.parent.name + suffix, data, bench_kernels._macs(g), conv))
    if not quick:
        for name in MLPERF_MS:
            graph = getattr(bench_kernels, name)()
            out.append(("mlperf/" + name, bench_kernels.int8_model(graph), bench_kernels._macs(graph),
                        any(op.kind == "CONV_2D" for op in graph.ops)))
    for n in CHAIN:
        graph = tiny_chain(n)
        out.append(("chain%d" % n, bench_kernels.int8_model(graph), bench_kernels._macs(graph),
                    False))
    return out


def _input(data):
    from npu_sdk import tflite
    g = tflite.parse(data)
    t = g.tensors[g.inputs[0]]
    rng = np.random.default_rng(0)
    if t.dtype == "float32":  # the zoo's 16x8 models take floats
        return rng.uniform(-1, 1, t.shape).astype(np.float32)
    return rng.integers(-128, 128, t.shape, dtype=np.int8)


def measure(target, kernels, models):
    """{name: row} on one board: instructions per inference and per op, bit-exactness."""
    from npu_sdk import compiler, reference, tflite
    from npu_sdk.link import Board
    emu = Emulator("qemu", board=target, icount=True, kernels=kernels)
    rows = {}
    try:
        with Board(emu.port, timeout=900) as b:
            label = b.info.kernels
            for name, data, macs, _ in models:
                blob = compiler.compile_graph(tflite.parse(data)).blob
                x = _input(data)
                b.flash(blob, name="m")
                b.invoke("m", [x])  # the run after a load also collects the load's garbage
                (y,), us = b.invoke("m", [x])  # unprofiled: the clock readings cost too
                _, _, ops = b.invoke("m", [x], profile=True)
                rows[name] = dict(instructions=us * 1000, macs=macs,
                                  per_op=[(op, t * 1000) for op, t in ops],
                                  bit_exact=bool(np.array_equal(y, reference.run_tflm(data, [x])[0])))
    finally:
        emu.stop()
    return label, rows


def run(quick):
    models = cases(quick)
    result = {}
    for target in TARGETS:
        for kernels in KERNELS:
            label, rows = measure(target, kernels, models)
            result["%s/%s" % (target, kernels)] = dict(kernels=label, models=rows)
    result["targets"] = targets(result, models)
    return result


def _fixed_cost(rows):
    a, b = rows["chain%d" % CHAIN[0]]["instructions"], rows["chain%d" % CHAIN[1]]["instructions"]
    return (b - a) / (CHAIN[1] - CHAIN[0])


def targets(result, models):
    """The issue's targets on the Cortex-M4 image, each as measured vs wanted, held or not."""
    viper, native = (result["mps2-an386/%s" % k]["models"] for k in KERNELS)
    out = {}
    conv = [name for name, _, _, is_conv in models if is_conv]
    ratios = {n: viper[n]["instructions"] / max(native[n]["instructions"], 1) for n in conv}
    out["native_over_viper_min_conv"] = dict(
        measured=min(ratios.values()) if ratios else None, wanted=">= %d" % NATIVE_OVER_VIPER,
        held=min(ratios.values()) >= NATIVE_OVER_VIPER if ratios else None)  # None: not run
    fixed = _fixed_cost(native)
    out["fixed_cost_per_op"] = dict(measured=fixed, wanted="<= %d" % FIXED_COST_MAX,
                                    held=fixed <= FIXED_COST_MAX)
    mlperf = {n: native["mlperf/" + n]["instructions"] for n in MLPERF_MS if "mlperf/" + n in native}
    if mlperf:
        below = {n: i < MLPERF_MS[n][0] * CYCLES_PER_MS for n, i in mlperf.items()}
        within = {n: i / (MLPERF_MS[n][1] * CYCLES_PER_MS) for n, i in mlperf.items()}
        out["below_tflm_reference_cycles"] = dict(measured=below, wanted="all", held=all(below.values()))
        out["over_xcube_ai_cycles_max"] = dict(measured=max(within.values()),
                                               wanted="<= %.1f" % XCUBE_WITHIN,
                                               held=max(within.values()) <= XCUBE_WITHIN)
    exact = all(r["bit_exact"] for k in result if k != "targets" for r in result[k]["models"].values())
    out["bit_exact_all"] = dict(measured=exact, wanted=True, held=exact)
    return out


def text(result):
    lines = ["## Instructions per inference on the qemu boards (-icount shift=0)", "",
             "Instruction counts (to the board clock's 1,000) are a lower bound on an in-order "
             "Cortex-M4's cycles: the published MLPerf Tiny v1.1 NUCLEO-L4R5ZI figures below are "
             "cycles (ms x 120,000), a lower-bound comparison, not the same measurement.", ""]
    keys = [k for k in result if k != "targets"]
    lines.append("kernels: " + ", ".join("%s %s" % (k, result[k]["kernels"]) for k in keys))
    lines += ["", "| model | MACs | " + " | ".join(keys) + " | viper/native M4 | MACs/instr (native M4) "
              "| TFLM ref M4 cycles | X-CUBE-AI cycles | microTVM+CMSIS-NN cycles | exact |",
              "|" + "---|" * (len(keys) + 8)]
    m4v, m4n = result["mps2-an386/viper"]["models"], result["mps2-an386/native"]["models"]
    for name in m4n:
        pub = MLPERF_MS.get(name.replace("mlperf/", ""), (None,) * 3) if name.startswith("mlperf/") \
            else (None,) * 3
        cells = [name, "%d" % m4n[name]["macs"]]
        cells += ["%.0f" % result[k]["models"][name]["instructions"] for k in keys]
        cells.append("%.1f" % (m4v[name]["instructions"] / max(m4n[name]["instructions"], 1)))
        cells.append("%.3f" % (m4n[name]["macs"] / max(m4n[name]["instructions"], 1)))
        cells += ["-" if p is None else "%.0f" % (p * CYCLES_PER_MS) for p in pub]
        cells.append("yes" if all(result[k]["models"][name]["bit_exact"] for k in keys) else "NO")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Per op on the Cortex-M4 image, instructions (viper / native):", ""]
    for name in m4n:
        if name.startswith("chain"):
            continue
        per = ["%s %.0f/%.0f" % (op, v, n) for (op, v), (_, n)
               in zip(m4v[name]["per_op"], m4n[name]["per_op"])]
        lines.append("- %s: %s" % (name, ", ".join(per)))
    fixed = {k: _fixed_cost(result[k]["models"]) for k in keys}
    lines += ["", "Fixed cost per op (chains of %d and %d 1x1 FC ops, slope): %s" % (
        CHAIN[0], CHAIN[1], ", ".join("%s %.0f" % (k, v) for k, v in fixed.items())), "",
        "Targets (Cortex-M4 image):", ""]
    for k, t in result["targets"].items():
        lines.append("- %s: %s (wanted %s): %s" % (k, json.dumps(t["measured"]), t["wanted"],
                                                   {True: "held", False: "NOT HELD"}.get(
                                                       t["held"], "not measured (--quick)")))
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke test: see above")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args()
    result = run(args.quick)
    print(json.dumps(result, default=str) if args.json else "\n".join(text(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
