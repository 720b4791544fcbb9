"""`npu run`: inputs read and checked on the host against the model's inputs before they
travel (quantized on request), the run, every output printed, then saved."""
import io
import json
import os

from .cli_files import check_writable, write_atomic
from .errors import NpuError
from .link import codec


def load_inputs(paths):
    """The arrays of every --input, in order: an .npy is one input, an .npz its arrays in
    the order they were saved."""
    import numpy as np
    arrays = []
    for path in paths:
        try:
            data = np.load(path, allow_pickle=False)
        except EOFError as e:
            raise NpuError("cannot read input %s: the file is empty; save the input with "
                           "numpy.save" % path) from e
        except (OSError, ValueError) as e:
            raise NpuError("cannot read input %s: %s (expected a .npy array or an .npz of "
                           "arrays)" % (path, getattr(e, "strerror", None) or e)) from e
        if isinstance(data, np.ndarray):
            arrays.append(data)
            continue
        with data:
            if not data.files:
                raise NpuError("cannot read input %s: the .npz holds no arrays" % path)
            arrays += [data[k] for k in data.files]
    return arrays


def check_inputs(name, spec, arrays, quantize):
    """The arrays as the model's inputs (dtype, shape, count), quantized with each input's
    scale and zero point under --quantize; NpuError naming the first that does not fit."""
    import numpy as np
    if len(arrays) != len(spec.inputs):
        raise NpuError("model %r takes %d input(s), got %d: pass one --input per input, or one "
                       ".npz holding them in order" % (name, len(spec.inputs), len(arrays)))
    checked = []
    for i, (x, want) in enumerate(zip(arrays, spec.inputs)):
        quantizable = x.dtype.kind == "f" and want.dtype_name == "int8" and want.scale
        if quantize and quantizable:
            x = quantize_input(x, want.scale, want.zero_point)
        if x.dtype != want.dtype or x.size != int(np.prod(want.shape)) \
                or _squeeze(x.shape) != _squeeze(want.shape):
            hint = ""
            if quantizable:
                hint = ": pass --quantize to quantize float data with the input's scale %g " \
                       "and zero point %d" % (want.scale, want.zero_point)
            elif x.dtype != want.dtype:
                hint = ": save the input as %s" % want.dtype_name
            raise NpuError("model %r: input %d wants %s %s, got %s %s%s"
                           % (name, i, want.dtype_name, tuple(want.shape), x.dtype,
                              tuple(x.shape), hint))
        checked.append(x.reshape(want.shape))
    return checked


def quantize_input(x, scale, zero_point):
    """TFLite's affine quantization of a float array to int8 (rounding half away from zero)."""
    import numpy as np
    v = np.asarray(x, np.float32) / np.float32(scale)
    q = np.trunc(v + np.copysign(np.float32(0.5), v)) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def _squeeze(shape):
    shape = tuple(shape)
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape


def save_outputs(path, outputs):
    """One output to an .npy, any number to an .npz (keys y0, y1, ...)."""
    import numpy as np
    buf = io.BytesIO()
    if path.endswith(".npz"):
        np.savez(buf, **{"y%d" % i: y for i, y in enumerate(outputs)})
    elif len(outputs) == 1:
        np.save(buf, outputs[0])
    else:
        raise NpuError("the model has %d outputs: pass --output FILE.npz to save them all"
                       % len(outputs))
    write_atomic(path, buf.getvalue())


def cmd_run(args, board_of):
    """`board_of(args)` opens the board (cli._board)."""
    import numpy as np
    arrays = load_inputs(args.input)
    if args.output:
        check_writable(args.output, "--output")
    ops = None
    with board_of(args) as board:
        spec = board.spec(args.name)
        if spec is not None:
            arrays = check_inputs(args.name, spec, arrays, args.quantize)
            if args.output and not args.output.endswith(".npz") and len(spec.outputs) > 1:
                raise NpuError("model %r has %d outputs: pass --output FILE.npz to save them all"
                               % (args.name, len(spec.outputs)))
        elif args.quantize:
            raise NpuError("--quantize needs model %r's input scale, and this host has not "
                           "flashed that blob: `npu flash` it from here first, or pass int8 "
                           "data" % args.name)
        if args.profile:
            outputs, median_us, ops = board.invoke(args.name, arrays, repeat=args.repeat,
                                                   profile=True)
        else:
            outputs, median_us = board.invoke(args.name, arrays, repeat=args.repeat)
        heap = board.memory()
        clock = _clock(board.info)
        estimate = _estimate(spec, board.info.board) if clock == "host" else None
        icount = bool(board.info.features & codec.F_ICOUNT)
    if args.json:
        report = dict(name=args.name, median_us=median_us, repeat=args.repeat, clock=clock,
                      outputs=[dict(shape=list(o.shape), dtype=str(o.dtype), data=o.tolist())
                               for o in outputs])
        if ops is not None:
            report["profile"] = [dict(index=i, op=op, us=us) for i, (op, us) in enumerate(ops)]
        if icount:  # the board's microsecond is 1,000 executed instructions
            report["instructions_median"] = round(median_us * 1000)
            for row in report.get("profile", []):
                row["instructions"] = row["us"] * 1000
        if heap is not None and heap["heap"] is not None:
            report["heap"] = heap
        if estimate is not None and estimate["us"] is not None:
            report["estimate_us"] = estimate["us"]
            report["estimate_profile"] = estimate["profile"]
        print(json.dumps(report))
    else:
        for i, y in enumerate(outputs):
            prefix = "output %d: " % i if len(outputs) > 1 else ""
            print(prefix + np.array2string(y, max_line_width=120))
        print("invoke: %.3f ms median of %d (%s)%s" % (
            median_us / 1000.0, args.repeat, _CLOCKS[clock],
            ", %d instructions (-icount)" % round(median_us * 1000) if icount else ""))
        if estimate is not None:
            print(_estimate_line(estimate))
        if heap is not None and heap["heap"] is not None and heap["after_invoke"] is not None:
            from .cli import _heap_line
            print(_heap_line(heap))
        if ops is not None:
            total = sum(us for _, us in ops) or 1
            for i, (op, us) in enumerate(ops):
                print("  #%-3d %-20s %10d us  %5.1f%%" % (i, op, us, 100.0 * us / total))
    if args.output:  # after the result is printed: a failed save loses nothing
        save_outputs(args.output, outputs)
        if not args.json:
            print("saved %d output(s) to %s" % (len(outputs), os.path.abspath(args.output)))


_CLOCKS = {"board": "the board's clock", "host": "the host's clock: the emulator's CPython core "
           "runs the kernels at the host's speed, not the board's"}


def _estimate(spec, profile_name):
    """The board profile's latency for a model whose MACs this host knows: MACs over the
    profile's sustained MAC rate (profiles.py). None when the host does not know the model."""
    from . import profiles
    if spec is None or spec.macs is None:
        return None
    try:
        rate = profiles.get(profile_name)["macs_per_s"]
    except NpuError:  # a board of another SDK's profile
        rate = None
    us = round(spec.macs / rate * 1e6, 1) if rate else None
    return dict(profile=profile_name, macs=spec.macs, rate=rate, us=us)


def _estimate_line(e):
    if e["us"] is None:
        return ("estimate: board profile %r has no MAC rate (run `npu emulate --board PROFILE`, "
                "e.g. cortex-m4-256k, for one)" % e["profile"])
    return ("estimate on %s: %.3f ms (%d MACs at %.0f M MAC/s, the profile's figure)"
            % (e["profile"], e["us"] / 1000.0, e["macs"], e["rate"] / 1e6))


def _clock(info):
    """Whose time a board's median is: the emulator's CPython core (C kernels) reports host time."""
    return "host" if info.kernels == "c" else "board"
