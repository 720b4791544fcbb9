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


def cmd_compile(args):
    result = compiler.compile_file(args.model)
    out = args.output or os.path.splitext(args.model)[0] + ".npb"
    _write_atomic(out, result.blob)
    summary = dict(output=out, blob_bytes=len(result.blob), arena_bytes=result.arena_size,
                   arena_lower_bound=result.arena_lower_bound, const_bytes=result.const_size,
                   ops=result.n_ops)
    if args.json:
        print(json.dumps(summary))
    else:
        print("%s: %d bytes, %d ops, arena %d bytes (lower bound %d), constants %d bytes"
              % (out, len(result.blob), result.n_ops, result.arena_size, result.arena_lower_bound,
                 result.const_size))


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
    from . import blob
    try:
        with open(args.blob, "rb") as f:
            data = f.read()
    except OSError as e:
        raise NpuError("cannot read %s: %s" % (args.blob, e.strerror or e)) from e
    blob.unpack(data)  # refuse a damaged file before touching the board
    name = args.name or os.path.splitext(os.path.basename(args.blob))[0]
    with _board(args) as board:
        board.flash(data, name, progress=None)
    if args.json:
        print(json.dumps(dict(name=name, bytes=len(data))))
    else:
        print("flashed %s as %r (%d bytes)" % (args.blob, name, len(data)))


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
        outputs, median_us = board.run(args.name, [x], repeat=args.repeat)
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


def build_parser():
    p = argparse.ArgumentParser(prog="npu", description="Compile TFLite models for NPU boards, "
                                "flash them over a serial link and run them.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def board_args(sp):
        sp.add_argument("--port", help="serial port or pyserial URL (default: $NPU_PORT)")
        sp.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the board")
        sp.add_argument("--json", action="store_true", help="print JSON")

    sp = sub.add_parser("compile", help="compile an int8 .tflite model into an .npb blob")
    sp.add_argument("model")
    sp.add_argument("-o", "--output", help="output .npb (default: MODEL.npb)")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.set_defaults(func=cmd_compile)

    sp = sub.add_parser("emulate", help="run a virtual board on a pseudo-terminal")
    from npu_emulator.emulator import add_arguments
    add_arguments(sp)
    sp.set_defaults(func=cmd_emulate)

    sp = sub.add_parser("flash", help="install an .npb blob on the board")
    sp.add_argument("blob")
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
    sp.add_argument("--repeat", type=int, default=1, help="run N times, report the board's median")
    board_args(sp)
    sp.set_defaults(func=cmd_run)
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
