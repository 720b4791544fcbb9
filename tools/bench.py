"""Benchmarks, side by side in one run, reported as ratios (machines are shared and noisy).

    python tools/bench.py [--quick] [--json out/bench.json] [--markdown docs/benchmarks.md]

Sections:
  compile  blob size vs the int8 .tflite; arena vs its lower bound and TFLite Micro's planned head
  latency  board-measured median invoke (`npu run --repeat N`: Board.invoke) of both emulator
           cores vs TFLite Micro, LiteRT builtin kernels and LiteRT with XNNPACK, all
           single-threaded, on the same inputs: every zoo model (int8 and 16x8), the MLPerf-Tiny-class
           models of tools/bench_kernels.py and its PyTorch-export MobileNetV2-class model
  memory   on the qemu board (mps3-an547, a 256 KB heap): each model's RAM on the board (its
           peak sampled heap over the heap before its load) vs TFLite Micro's whole arena
           (arena_used_bytes) for the same model, bit-exactness, and the firmware's idle heap
  icount   instructions per inference on both qemu images (QEMU -icount), viper kernels vs
           the native npu module, per op, MACs per instruction, the firmware's fixed cost per
           op, next to MLPerf Tiny v1.1's published Cortex-M4 cycles (tools/bench_icount.py)
  link     flash throughput on the paced virtual UART vs the line rate and vs mpremote
           (tools/bench_link.py)
  farm     flashing through labgrid and ser2net's RFC 2217 vs the line rate; the zoo's plugin
           test suite across 3 boards of a local labgrid farm vs 1 (tools/bench_farm.py)
  quant    SDK post-training quantization vs TensorFlow's converter on the same calibration
           data, every float zoo model, int8 and 16x8: accuracy and SQNR vs float, bit-exact vs
           TFLite Micro for the SDK's and TF's models (tools/quant_compare.py; TensorFlow from
           $NPU_TF_PYTHON or this interpreter, else "not measured")
--quick (CI smoke test): zoo models and the PyTorch-export one only, the CPython core, few repeats, link at 921600 only,
no mpremote, 2 faulty transfers (the full run: 1,000 at 921600, half on each core), no
memory or quantization section, the farm's flash only, the icount section's quick form.
--only SECTION: one section alone (farm, memory, icount).
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from npu_sdk import compiler, reference, report, tflite
from npu_sdk.errors import NpuError

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]
from bench_link import TARGETS as LINK_TARGETS  # noqa: E402  the issue's link targets, one place
from tools.testbed import Emulator  # noqa: E402  the same emulator start-up the tests use


def zoo_models():
    """The zoo's int8 models and its 16x8 ones (int16x8.tflite: TensorFlow's 16x8 converter)."""
    return sorted(p for pattern in ("*/int8*.tflite", "*/int16x8.tflite")
                  for p in (ROOT / "model_zoo").glob(pattern))


def mlperf_models(out_dir):
    """The MLPerf-Tiny-class models of tools/bench_kernels.py, written as .tflite files (the AD
    autoencoder also with per-tensor weights, as MLPerf Tiny's file has them)."""
    import bench_kernels
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, build, per_channel in [(n, n, True) for n in bench_kernels.MODELS] + [
            ("ae_per_tensor", "ae", False)]:
        path = out_dir / ("mlperf_%s.tflite" % name)
        path.write_bytes(bench_kernels.int8_model(bench_kernels.MODELS[build](),
                                                  per_channel=per_channel))
        paths.append(path)
    return paths


def pytorch_models(out_dir):
    """The MobileNetV2-class model exported the PyTorch way (NCHW 1x3x96x96, leading TRANSPOSE;
    tools/bench_kernels.mbv2_torch): latency only, its arena outgrows the qemu board's heap."""
    import bench_kernels
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "mbv2_torch.tflite"
    path.write_bytes(bench_kernels.int8_model(bench_kernels.mbv2_torch()))
    return [path]


def _tool_json(args, timeout):
    """Run a tools/ script that prints JSON; its result, or an error note."""
    proc = subprocess.run([sys.executable] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        return dict(error=(proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1])
    lines = proc.stdout.strip().splitlines()
    for text in (proc.stdout, lines[-1] if lines else ""):  # all of it, or its last line
        try:
            return json.loads(text)
        except ValueError:
            continue
    return dict(error="%s printed no JSON" % Path(str(args[0])).name)


def sample_input(model_bytes):
    """A deterministic input of the model's first input's dtype and shape."""
    graph = tflite.parse(model_bytes)
    t = graph.tensors[graph.inputs[0]]
    rng = np.random.default_rng(0)
    if np.dtype(t.dtype) == np.float32:
        return rng.random(t.shape, dtype=np.float32)
    return rng.integers(-128, 128, t.shape, dtype=np.int8)


def tflm_head_bytes(path):
    """TFLite Micro's planned arena head for a model (its activations), or None."""
    try:
        return reference.tflm_arena(Path(path).read_bytes())["head"]
    except NpuError:
        return None


def bench_compile(models):
    rows = []
    for path in models:
        c = compiler.compile_file(path)
        head = tflm_head_bytes(path)
        size = path.stat().st_size
        rows.append(dict(model=_name(path), blob_bytes=len(c.blob), tflite_bytes=size,
                         blob_over_tflite=len(c.blob) / size, arena_bytes=c.arena_size,
                         arena_lower_bound=c.arena_lower_bound, tflm_head_bytes=head,
                         arena_over_tflm=c.arena_size / head if head else None,
                         arena_over_bound=c.arena_size / c.arena_lower_bound if c.arena_lower_bound else 1.0))
    return rows


def _median_us(fn, repeat):
    fn()  # warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000.0


def host_latencies(model_bytes, x, repeat):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    out = {}
    tflm = reference.tflm_interpreter(model_bytes)
    detail = tflm.get_input_details(0)
    tflm.set_input(x.reshape(detail["shape"]), 0)
    out["tflm_us"] = _median_us(tflm.invoke, repeat)
    for key, resolver in (("litert_builtin_us", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES),
                          ("litert_xnnpack_us", OpResolverType.AUTO)):
        it = Interpreter(model_content=model_bytes, num_threads=1, experimental_op_resolver_type=resolver)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        out[key] = _median_us(it.invoke, repeat)
    return out


def board_latency(core, blob, x, repeat):
    if core == "micropython":
        repeat = max(3, min(repeat, 20))  # the VM is ~100x slower; its median settles quickly
    emu = Emulator(core)
    try:
        from npu_sdk.link import Board
        with Board(emu.port, timeout=120) as board:
            board.flash(blob, name="bench")
            _, median_us = board.invoke("bench", [x], repeat=repeat)
            return float(median_us)
    finally:
        emu.stop()


def bench_latency(models, repeat, cores):
    rows = []
    for path in models:
        model_bytes = path.read_bytes()
        x = sample_input(model_bytes)
        c = compiler.compile_file(path)
        macs = report.report(c.blob)["totals"]["macs"]
        row = dict(model=_name(path), ops=c.n_ops, macs=macs, **host_latencies(model_bytes, x, repeat))
        for core in cores:
            us = row["emu_%s_us" % core] = board_latency(core, c.blob, x, repeat)
            row["emu_%s_mmacs_per_s" % core] = macs / us if us else None  # MACs per µs
        emu = row.get("emu_cpython_us")
        if emu:
            row["emu_over_litert_builtin"] = emu / row["litert_builtin_us"]
            row["emu_over_litert_xnnpack"] = emu / row["litert_xnnpack_us"]
            row["tflm_over_emu"] = row["tflm_us"] / emu
            row["emu_us_per_op"] = emu / max(1, c.n_ops)
        rows.append(row)
    return rows


IDLE_HEAP_TARGET = 24 << 10  # issue 13: the firmware's idle heap with its code frozen


def bench_memory(models, board="mps3-an547"):
    """Every model installed on one qemu board and run in turn: (rows, the idle heap)."""
    cases = []
    for path in models:
        model_bytes = path.read_bytes()
        x = sample_input(model_bytes)
        name = _name(path)
        cases.append((name, name.replace("/", "_"), model_bytes, compiler.compile_file(path).blob, x))
    emu = Emulator("qemu", board=board)
    rows = []
    try:
        from npu_sdk.link import Board
        with Board(emu.port, timeout=120) as b:
            for _, on_board, _, blob, _ in cases:
                b.flash(blob, name=on_board)
            idle = b.memory()["idle"]
            for name, on_board, model_bytes, _, x in cases:
                (y,), _ = b.invoke(on_board, [x])
                mem = b.memory()
                tflm = reference.tflm_arena(model_bytes)["total"]
                rows.append(dict(model=name, board_model_ram=mem["model_ram"], tflm_arena_used=tflm,
                                 ram_over_tflm=mem["model_ram"] / tflm,
                                 bit_exact=bool(np.array_equal(y, reference.run_tflm(model_bytes, [x])[0]))))
    finally:
        emu.stop()
    return rows, idle


def _name(path):
    return path.stem if path.parent.name == "mlperf" else "%s/%s" % (path.parent.name, path.stem)


def _table(rows, columns):
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            cells.append("-" if v is None else ("%.3g" % v if isinstance(v, float) else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(result):
    """The issue targets, each as measured vs wanted."""
    comp, lat = result["compile"], result["latency"]
    out = dict(
        blob_over_tflite_max=max(r["blob_over_tflite"] for r in comp),
        blob_over_tflite_median=statistics.median(r["blob_over_tflite"] for r in comp),
        arena_over_tflm_max=max((r["arena_over_tflm"] for r in comp if r["arena_over_tflm"]), default=None),
        arena_over_bound_max=max(r["arena_over_bound"] for r in comp))
    heavy = [r for r in lat if r["tflm_us"] >= 500 and r.get("emu_cpython_us")]
    if heavy:
        out["compute_bound_models"] = len(heavy)
        out["emu_over_litert_builtin_max"] = max(r["emu_over_litert_builtin"] for r in heavy)
        out["tflm_over_emu_median"] = statistics.median(r["tflm_over_emu"] for r in heavy)
    per_op = [r["emu_us_per_op"] for r in lat if r.get("emu_us_per_op") and r["tflm_us"] < 500]
    if per_op:
        out["emu_us_per_op_small_models_max"] = max(per_op)
    mem = result.get("memory")
    if mem:
        out["board_ram_over_tflm_arena_max"] = max(r["ram_over_tflm"] for r in mem["models"])
        out["board_bit_exact"] = all(r["bit_exact"] for r in mem["models"])
        out["board_idle_heap_bytes"] = mem["idle_heap"]
        out["board_idle_heap_target"] = IDLE_HEAP_TARGET
    out.update(result.get("quant", {}).get("summary", {}))  # quant targets, from quant_compare
    icount = result.get("icount", {}).get("targets", {})
    out.update({"icount_" + k: v for k, v in icount.items()})
    farm = result.get("farm", {}).get("targets", {})
    out.update({"farm_" + k: v for k, v in farm.items() if k != "wanted"})
    return out


def memory_text(rows, idle):
    return "\n".join([
        "## Memory on the qemu board (mps3-an547, 256 KB heap): model RAM vs TFLite Micro's arena",
        "", _table(rows, ["model", "board_model_ram", "tflm_arena_used", "ram_over_tflm", "bit_exact"]),
        "", "idle heap at boot: %d bytes (target <= %d)" % (idle, IDLE_HEAP_TARGET)])


def quant_section(quant):
    """tools/quant_compare.py's side-by-side table as markdown, or why it is missing."""
    if "results" not in quant:
        return "not measured: %s" % quant.get("error")
    import quant_compare
    return quant_compare.format_markdown(quant["results"])


#: faulty transfers in the full run (half on each core, at 921600 baud); --quick runs 2
LINK_FAULTS = 1000


def link_text(link):
    """The link section: a row per core and baud, the fault run, the three issue targets."""
    if "error" in link:
        return ["not measured: %s" % link["error"]]
    runs = link["runs"]
    keys = sorted({k for r in runs for k in r}, key=lambda k: (k not in ("core", "baud"), k))
    text = [_table(runs, keys), ""]
    t = link["targets"]
    text.append("Target 1, payload / line rate >= %.2f: " % LINK_TARGETS["ratio_of_line_rate"] + ", ".join(
        "%s@%d %.3f" % (r["core"], r["baud"], r["ratio_of_line_rate"]) for r in runs))
    speedups = ["%d baud %sx (transfer phases %sx)" % (
        r["baud"], r["speedup_over_mpremote"], r["transfer_speedup_over_mpremote"])
        for r in runs if r.get("speedup_over_mpremote")]
    text.append("Target 2, speed-up of `npu flash` over `mpremote fs cp`, whole commands "
                "(micropython core) >= %gx: " % LINK_TARGETS["speedup_over_mpremote"]
                + (", ".join(speedups) or "not measured"))
    zoo = link.get("zoo_runs")
    if zoo:
        text += ["", "Not a target, what a user sees: the zoo's %s int8 model, whole commands:" % zoo[0]["model"],
                 "", _table(zoo, list(zoo[0])), ""]
    f = link.get("faults")
    text.append("Target 3, " + (f["summary"] if f else "faults not measured")
                + ("; split across %s" % ", ".join(sorted({r["core"] for r in runs})) if f else ""))
    text += ["", "```", json.dumps(t), "```"]
    return text


def farm_text(farm):
    """The farm section: the flash rows, the suite rows, the two issue targets."""
    if "error" in farm:
        return ["not measured: %s" % farm["error"]]
    from bench_farm import TARGETS as FARM_TARGETS
    text = [_table(farm["flash"], list(farm["flash"][0])), ""]
    if farm["suite"]:
        text += [_table(farm["suite"], list(farm["suite"][0])), ""]
    t = farm["targets"]
    text.append("Target 1, RFC 2217 flash / line rate >= %.2f: %s" % (
        FARM_TARGETS["rfc2217_ratio_of_line_rate"], t["rfc2217_ratio_of_line_rate"]))
    text.append("Target 2, zoo suite on 3 boards vs 1 at 115200 >= %gx: %s" % (
        FARM_TARGETS["three_boards_speedup"], t.get("three_boards_speedup", "not measured")))
    return text


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    lat = result["latency"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    names = [r["model"] for r in lat]
    axes[0].barh(names, [r.get("emu_over_litert_builtin") or 0 for r in lat])
    axes[0].axvline(1.0, color="red")
    axes[0].set_xlabel("emulator (C kernels) / LiteRT builtin latency (< 1: faster)")
    axes[1].barh([r["model"] for r in result["compile"]],
                 [r["arena_over_tflm"] or 0 for r in result["compile"]], label="arena / TFLM head")
    axes[1].barh([r["model"] for r in result["compile"]],
                 [r["blob_over_tflite"] for r in result["compile"]], alpha=0.5, label="blob / .tflite")
    axes[1].axvline(1.0, color="red")
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke test: see above")
    p.add_argument("--repeat", type=int, default=None)
    p.add_argument("--json", default=str(ROOT / "out" / "bench.json"))
    p.add_argument("--only", choices=["farm", "memory", "icount"], help="run one section alone")
    p.add_argument("--markdown", help="also write the report as markdown to this file (plots beside it)")
    args = p.parse_args()
    repeat = args.repeat or (5 if args.quick else 100)
    cores = ["cpython"] if args.quick else ["cpython", "micropython"]
    farm_args = [ROOT / "tools" / "bench_farm.py", "--json"] + (["--quick"] if args.quick else [])
    if args.only == "farm":
        result = dict(farm=_tool_json(farm_args, timeout=600 if args.quick else 3600))
        result["summary"] = {"farm_" + k: v for k, v in result["farm"].get("targets", {}).items()}
        print("\n".join(["## Farm: boards through labgrid and ser2net's RFC 2217 on loopback", ""]
                        + farm_text(result["farm"])))
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
        return 0
    icount_args = [ROOT / "tools" / "bench_icount.py", "--json"] + (["--quick"] if args.quick else [])
    if args.only == "icount":
        import bench_icount
        icount = _tool_json(icount_args, timeout=7200)
        print("\n".join(bench_icount.text(icount) if "targets" in icount else [str(icount)]))
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(dict(icount=icount), indent=2, default=str))
        return 0 if "targets" in icount else 1
    models = zoo_models()
    latency_models = models if args.quick else models + mlperf_models(ROOT / "out" / "mlperf")
    latency_models = latency_models + pytorch_models(ROOT / "out" / "mlperf")
    if args.only == "memory":
        rows, idle = bench_memory(models + mlperf_models(ROOT / "out" / "mlperf"))
        print(memory_text(rows, idle))
        return 0 if max(r["ram_over_tflm"] for r in rows) <= 1 and idle <= IDLE_HEAP_TARGET else 1
    result = dict(repeat=repeat, compile=bench_compile(latency_models),
                  latency=bench_latency(latency_models, repeat, cores))
    link_args = [ROOT / "tools" / "bench_link.py", "--json", "--jobs", "2", "--fault-baud", "921600"]
    link_args += (["--baud", "921600", "--core", "cpython", "--faults", "2"] if args.quick else
                  ["--mpremote", "--faults", str(LINK_FAULTS // 2)])  # split across both cores
    result["link"] = _tool_json(link_args, timeout=1800 if args.quick else 4 * 3600)
    result["farm"] = _tool_json(farm_args, timeout=600 if args.quick else 3600)
    result["icount"] = _tool_json(icount_args, timeout=1800 if args.quick else 7200)
    if not args.quick:
        rows, idle = bench_memory([p for p in latency_models if p.stem != "mbv2_torch"])
        result["memory"] = dict(models=rows, idle_heap=idle)
        result["quant"] = _tool_json([ROOT / "tools" / "quant_compare.py", "--json", "--activations",
                                      "int8,int16,mixed"], timeout=3600)
    result["summary"] = summary(result)
    text = ["## Compile (ratios < 1 are better)", "",
            _table(result["compile"], ["model", "blob_bytes", "tflite_bytes", "blob_over_tflite", "arena_bytes",
                                       "arena_lower_bound", "tflm_head_bytes", "arena_over_tflm",
                                       "arena_over_bound"]),
            "", "## Latency, median µs, single thread (board-measured for the emulator)", "",
            _table(result["latency"], ["model", "ops", "tflm_us", "litert_builtin_us", "litert_xnnpack_us"]
                   + ["emu_%s_us" % c for c in cores]
                   + ["emu_over_litert_builtin", "emu_over_litert_xnnpack", "tflm_over_emu", "emu_us_per_op"]),
            "", "## Throughput of the emulator cores, million MACs per second", "",
            _table(result["latency"], ["model", "macs"] + ["emu_%s_mmacs_per_s" % c for c in cores]),
            "", "## Link: flashing a 200 KB incompressible blob on the paced virtual UART", ""]
    text += link_text(result["link"])
    if "memory" in result:
        text += ["", memory_text(result["memory"]["models"], result["memory"]["idle_heap"])]
    import bench_icount
    text += [""] + (bench_icount.text(result["icount"]) if "targets" in result["icount"]
                    else ["## Instructions on the qemu boards", "", "not measured: %s"
                          % result["icount"].get("error")])
    text += ["", "## Farm: boards through labgrid and ser2net's RFC 2217 on loopback", ""]
    text += farm_text(result["farm"])
    if "quant" in result:
        text += ["", "## Quantization vs TensorFlow's converter, same calibration data, held-out data",
                 "", quant_section(result["quant"])]
    text += ["", "## Targets", "", "```", json.dumps(result["summary"], indent=1), "```"]
    print("\n".join(text))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    if args.markdown:
        md = Path(args.markdown)
        png = md.with_suffix(".png")
        try:
            plot(result, png)
            picture = "![ratios](%s)\n\n" % png.name
        except ImportError:
            picture = ""
        md.write_text("# Benchmarks\n\nWritten by `python tools/bench.py --markdown %s` on a shared "
                      "2-core machine; compare ratios, not absolute times.\n\n%s%s\n"
                      % (args.markdown, picture, "\n".join(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
