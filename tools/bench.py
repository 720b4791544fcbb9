"""Benchmarks, side by side in one run, reported as ratios (machines are shared and noisy).

    python tools/bench.py [--quick] [--json out/bench.json] [--markdown docs/benchmarks.md]

Sections:
  compile  blob size vs the int8 .tflite; arena vs its lower bound and TFLite Micro's planned head
  latency  board-measured median invoke of both emulator cores vs TFLite Micro, LiteRT builtin
           kernels and LiteRT with XNNPACK, all single-threaded, on the same inputs
"""
import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from npu_sdk import compiler, reference, tflite

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import Emulator  # noqa: E402  the same emulator start-up the tests use


def zoo_models():
    return sorted(p for p in (ROOT / "model_zoo").glob("*/int8*.tflite"))


def sample_input(model_bytes):
    """A deterministic input of the model's first input's dtype and shape."""
    graph = tflite.parse(model_bytes)
    t = graph.tensors[graph.inputs[0]]
    rng = np.random.default_rng(0)
    if np.dtype(t.dtype) == np.float32:
        return rng.random(t.shape, dtype=np.float32)
    return rng.integers(-128, 128, t.shape, dtype=np.int8)


def tflm_head_bytes(path):
    """TFLite Micro's planned arena head for a model, read from its recording allocator."""
    code = ("from npu_sdk import reference; import sys; "
            "reference.tflm_interpreter(open(sys.argv[1], 'rb').read()).print_allocations()")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    out = proc.stdout + proc.stderr  # the allocator prints from C++, on either stream
    match = re.search(r"Arena allocation head (\d+) bytes", out)
    return int(match.group(1)) if match else None


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
        row = dict(model=_name(path), ops=c.n_ops, **host_latencies(model_bytes, x, repeat))
        for core in cores:
            row["emu_%s_us" % core] = board_latency(core, c.blob, x, repeat)
        emu = row.get("emu_cpython_us")
        if emu:
            row["emu_over_litert_builtin"] = emu / row["litert_builtin_us"]
            row["emu_over_litert_xnnpack"] = emu / row["litert_xnnpack_us"]
            row["tflm_over_emu"] = row["tflm_us"] / emu
            row["emu_us_per_op"] = emu / max(1, c.n_ops)
        rows.append(row)
    return rows


def _name(path):
    return "%s/%s" % (path.parent.name, path.stem)


def _table(rows, columns):
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            cells.append("-" if v is None else ("%.3g" % v if isinstance(v, float) else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few repeats, CPython core only: a CI smoke test")
    p.add_argument("--repeat", type=int, default=None)
    p.add_argument("--json", default=str(ROOT / "out" / "bench.json"))
    p.add_argument("--markdown", help="also write the tables as markdown to this file")
    args = p.parse_args()
    repeat = args.repeat or (5 if args.quick else 200)
    cores = ["cpython"] if args.quick else ["cpython", "micropython"]
    models = zoo_models()
    result = dict(compile=bench_compile(models), latency=bench_latency(models, repeat, cores),
                  repeat=repeat)
    text = ["## Compile (ratios < 1 are better)", "",
            _table(result["compile"], ["model", "blob_bytes", "tflite_bytes", "blob_over_tflite", "arena_bytes",
                                       "arena_lower_bound", "tflm_head_bytes", "arena_over_tflm",
                                       "arena_over_bound"]),
            "", "## Latency, median µs of %d, single thread" % repeat, "",
            _table(result["latency"], ["model", "ops", "tflm_us", "litert_builtin_us", "litert_xnnpack_us"]
                   + ["emu_%s_us" % c for c in cores]
                   + ["emu_over_litert_builtin", "emu_over_litert_xnnpack", "tflm_over_emu", "emu_us_per_op"])]
    print("\n".join(text))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    if args.markdown:
        Path(args.markdown).write_text("# Benchmarks\n\nWritten by `python tools/bench.py --markdown %s`.\n\n%s\n"
                                       % (args.markdown, "\n".join(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
