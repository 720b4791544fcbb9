"""`npu`: the command line, thin over the API. Errors print once as `npu: ...` and exit 1."""
import argparse
import json
import os
import sys

import numpy as np

from . import compiler
from .errors import NpuError


def _port(args):
    return args.port or os.environ.get("NPU_PORT")


def _board(args):
    from .link import Board
    return Board(_port(args), timeout=args.timeout)


def _compile(args):
    """Compile args.model; a float model is quantized first with --calib. Returns (Compiled, report)."""
    from . import quantize, tflite
    graph = tflite.load(args.model)
    if not quantize.is_float_model(graph):
        if args.calib:
            raise NpuError("%s is already an int8 model; drop --calib" % args.model)
        return compiler.compile_graph(graph), None
    if not args.calib:
        raise NpuError("%s is a float model: pass --calib DATA.npy|.npz with representative inputs "
                       "to quantize it to int8 (see docs/quantization.md)" % args.model)
    result = quantize.quantize_with_report(
        graph, quantize.load_calibration(args.calib), method=args.method, int8_io=args.int8_io,
        per_channel=not args.per_tensor,
        overrides=quantize.load_overrides(args.overrides) if args.overrides else None)
    return compiler.compile_graph(result.graph), result


def cmd_compile(args):
    result, quant = _compile(args)
    out = args.output or os.path.splitext(args.model)[0] + ".npb"
    _write_atomic(out, result.blob)
    summary = dict(output=out, blob_bytes=len(result.blob), arena_bytes=result.arena_size,
                   arena_lower_bound=result.arena_lower_bound, const_bytes=result.const_size,
                   ops=result.n_ops)
    if quant is not None:
        summary.update(quantization=quant.report, warnings=list(quant.warnings))
    if args.json:
        print(json.dumps(summary))
        return
    if quant is not None:
        for w in quant.warnings:
            print("warning: %s" % w, file=sys.stderr)
        if args.report:
            from .quantize import format_report
            print(format_report(quant.report, quant.warnings))
    print("%s: %d bytes, %d ops, arena %d bytes (lower bound %d), constants %d bytes"
          % (out, len(result.blob), result.n_ops, result.arena_size, result.arena_lower_bound,
             result.const_size))


def cmd_inspect(args):
    from . import report
    if args.model.endswith(".npb"):
        from .link.board import load_model
        data = load_model(args.model, None)[0]
    else:
        data = _compile(args)[0].blob
    profile = None
    if args.board:
        from npu_emulator import profiles
        profile = profiles.get(args.board)
    rep = report.report(data, profile)
    print(json.dumps(rep) if args.json else report.format_text(rep))
    if profile is not None and not rep["board"]["fits"]:
        return 1


def _write_atomic(path, data):
    """Write to a temporary file and rename: a failed write never leaves half a file."""
    tmp = "%s.tmp%d" % (path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise NpuError("cannot write %s: %s" % (path, e.strerror or e)) from e


def cmd_emulate(args):
    from npu_emulator.emulator import serve
    return serve(args)


def cmd_flash(args):
    from .link.board import load_model
    data, spec = load_model(args.model, args.name)  # compile or verify before touching the board
    name = spec.name
    with _board(args) as board:
        board.flash(data, name)
    if args.json:
        print(json.dumps(dict(name=name, bytes=len(data))))
    else:
        print("flashed %s as %r (%d bytes)" % (args.model, name, len(data)))


def cmd_ls(args):
    with _board(args) as board:
        entries = board.list()
        info = board.info
    if args.json:
        print(json.dumps([dict(name=e.name, size=e.size, id=e.blob_id.hex()) for e in entries]))
        return
    for e in entries:
        print("%-32s %8d  %s" % (e.name, e.size, e.blob_id.hex()[:16]))
    print("%d model(s), %d bytes of flash free" % (len(entries), info.free_flash))


def cmd_run(args):
    try:
        x = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise NpuError("cannot read input %s: %s (expected a .npy array)" % (args.input, e)) from e
    with _board(args) as board:
        outputs, median_us = board.invoke(args.name, [x], repeat=args.repeat)
    y = outputs[0]
    if args.output:
        np.save(args.output, y)
    if args.json:
        print(json.dumps(dict(name=args.name, invoke_ms_median=median_us / 1000.0, repeat=args.repeat,
                              outputs=[dict(shape=list(o.shape), dtype=str(o.dtype), data=o.tolist())
                                       for o in outputs])))
    else:
        print(np.array2string(y, max_line_width=120))
        print("invoke: %.3f ms median of %d" % (median_us / 1000.0, args.repeat))


def cmd_zoo_list(args):
    from . import zoo
    found = zoo.models()
    if args.json:
        print(json.dumps([dict(name=m.name, task=m.task, path=str(m.path), files=list(m.files))
                          for m in found]))
        return
    width = max([len(m.name) for m in found] + [4])
    task_width = max([len(m.task) for m in found] + [4])
    print("%-*s  %-*s  %s" % (width, "NAME", task_width, "TASK", "FILES"))
    for m in found:
        print("%-*s  %-*s  %s" % (width, m.name, task_width, m.task, " ".join(m.files)))


def cmd_zoo_path(args):
    from . import zoo
    m = zoo.get(args.name)
    if args.json:
        print(json.dumps(dict(name=m.name, path=str(m.path), files=list(m.files))))
    else:
        print(m.path)


def _repeat(text):
    n = int(text)
    if not 1 <= n <= 0xFFFF:
        raise argparse.ArgumentTypeError("must be 1..65535")
    return n


def build_parser():
    p = argparse.ArgumentParser(prog="npu", description="Compile TFLite models for NPU boards, "
                                "flash them over a serial link and run them.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def board_args(sp):
        sp.add_argument("--port", help="serial port or pyserial URL (default: $NPU_PORT)")
        sp.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the board")
        sp.add_argument("--json", action="store_true", help="print JSON")

    def quant_args(sp):
        sp.add_argument("--calib", help="representative inputs (.npy, or .npz with key x or one key per "
                                        "input) to quantize a float model to int8")
        sp.add_argument("--method", default="minmax", choices=("minmax", "percentile", "mse"),
                        help="activation range method (default: minmax, as TFLite's converter)")
        sp.add_argument("--int8-io", action="store_true",
                        help="int8 model inputs/outputs (default: keep the float model's float32 I/O)")
        sp.add_argument("--per-tensor", action="store_true", help="per-tensor weights (default: per-channel)")
        sp.add_argument("--overrides", help="JSON/TOML file of per-layer settings (docs/quantization.md)")

    sp = sub.add_parser("compile", help="compile a .tflite model (int8, or float with --calib) into an "
                                        ".npb blob")
    sp.add_argument("model")
    sp.add_argument("-o", "--output", help="output .npb (default: MODEL.npb)")
    quant_args(sp)
    sp.add_argument("--report", action="store_true", help="print the per-layer quantization report")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.set_defaults(func=cmd_compile)

    sp = sub.add_parser("inspect", help="per-layer cost of a model (.tflite or .npb): MACs, weights, "
                                        "arena; whether it fits a board")
    sp.add_argument("model")
    sp.add_argument("--board", help="board profile to check the fit against (exit 1 if it does not fit)")
    quant_args(sp)
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.set_defaults(func=cmd_inspect)

    sp = sub.add_parser("emulate", help="run a virtual board on a pseudo-terminal")
    from npu_emulator.emulator import add_arguments
    add_arguments(sp)
    sp.set_defaults(func=cmd_emulate)

    sp = sub.add_parser("flash", help="install a model (.npb, or .tflite compiled on the fly) "
                                      "on the board")
    sp.add_argument("model", help="an .npb blob or an int8 .tflite model")
    sp.add_argument("--name", help="model name on the board (default: the file's stem)")
    board_args(sp)
    sp.set_defaults(func=cmd_flash)

    sp = sub.add_parser("ls", help="list the models on the board")
    board_args(sp)
    sp.set_defaults(func=cmd_ls)

    sp = sub.add_parser("run", help="run a model on the board")
    sp.add_argument("name")
    sp.add_argument("--input", required=True, help=".npy with the model input (dtype and shape "
                                                   "of the model's input)")
    sp.add_argument("--output", help="save the output as .npy")
    sp.add_argument("--repeat", type=_repeat, default=1, metavar="N",
                    help="run N times (1..65535), report the board's median")
    board_args(sp)
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("zoo", help="the model zoo that ships with npu-sdk")
    zoo_sub = sp.add_subparsers(dest="zoo_command", required=True, metavar="ZOO_COMMAND")
    zp = zoo_sub.add_parser("list", help="list the zoo's models: name, task, files")
    zp.add_argument("--json", action="store_true", help="print JSON")
    zp.set_defaults(func=cmd_zoo_list)
    zp = zoo_sub.add_parser("path", help="print the directory of a zoo model")
    zp.add_argument("name")
    zp.add_argument("--json", action="store_true", help="print JSON")
    zp.set_defaults(func=cmd_zoo_path)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except NpuError as e:
        print("npu: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
