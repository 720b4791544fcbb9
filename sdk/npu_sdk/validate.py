"""Validate a model on a board: its outputs against TFLite Micro (bit-exact) and LiteRT.

    from npu_sdk.link import Board
    from npu_sdk import validate

    with Board(port) as board:
        rep = validate.validate("model.tflite", board, "samples.npz")
    print(validate.format_text(rep))

The int8 .tflite is compiled here, flashed to the board and run on every sample;
the same samples go through TFLite Micro (the arithmetic oracle: the board must be
bit-exact with it) and LiteRT's builtin kernels (which may round differently; the
difference is reported, not judged). On a mismatch with TFLite Micro the model is
cut after each layer in turn: the prefix whose output is that layer's tensor is
compiled, flashed and run on the board and on TFLite Micro, and the first layer
whose output differs is reported with its first differing element.

Inputs: an .npz (key `x` for a one-input model, or one key per input named like the
input tensor, or x0, x1, ...; the zoo's x_int8 / x_float also work), an .npy, an
array or a list of per-sample input lists; a leading axis is the batch of samples.
Float data for an int8 input is quantized with the input's scale and zero point.
Without inputs a deterministic sample set is generated (seeded), spanning the int8
range of each input.
"""
import os

import flatbuffers
import numpy as np

from . import compiler, reference, rewrite, tflite, tflite_writer
from .errors import ModelError, NpuError
from .quantize import is_float_model

DEFAULT_SAMPLES = 8
SEED = 0
MAX_LAYER_SAMPLES = 4  # mismatching samples replayed per layer while locating the difference
ORACLE_FUSED = "TFLite Micro on the fused dilated convolution"


def _default_compile(model_bytes, source):
    return compiler.compile_graph(tflite.parse(model_bytes, source=source)).blob


# --- inputs ----------------------------------------------------------------------------

def _input_specs(graph):
    return [graph.tensors[i] for i in graph.inputs]


def _quantize_for(t, a):
    q = np.round(np.asarray(a, np.float64) / t.scale) + t.zero_point
    info = np.iinfo(np.dtype(t.dtype))
    return np.clip(q, info.min, info.max).astype(t.dtype)


def _as_input(t, a, what):
    """`a` cast to tensor t's dtype (quantizing float data for an integer input)."""
    a = np.asarray(a)
    want = np.dtype(t.dtype)
    if a.dtype == want:
        return a
    if want.kind == "i" and a.dtype.kind == "f":
        if t.scales is None:
            raise NpuError("%s is float data for the unquantized %s input %r; pass %s data"
                           % (what, want, t.name, want))
        return _quantize_for(t, a)
    if want.kind == "f" and a.dtype.kind in "iuf":
        return a.astype(want)
    if want.kind == "i" and a.dtype.kind in "iu":
        info = np.iinfo(want)
        if a.size and (a.min() < info.min or a.max() > info.max):
            raise NpuError("%s holds values outside %s for input %r" % (what, want, t.name))
        return a.astype(want)
    raise NpuError("%s has dtype %s; input %r takes %s" % (what, a.dtype, t.name, want))


def _batch(t, a, what):
    """Split array `a` into samples of tensor t's shape: a single sample or a leading batch."""
    shape = tuple(t.shape)
    size = int(np.prod(shape, dtype=np.int64))
    a = np.asarray(a)
    if a.shape == shape or (a.size == size and a.ndim <= len(shape)):
        return [a.reshape(shape)]
    if a.ndim >= 1 and a.shape[0] > 0 and int(np.prod(a.shape[1:], dtype=np.int64)) == size:
        return [x.reshape(shape) for x in a]
    raise NpuError("%s has shape %s; input %r is %s (give one sample or a batch [N, ...])"
                   % (what, a.shape, t.name, shape))


def _arrays_from_npz(data, specs, source):
    keys = list(data.keys())
    if len(specs) == 1:
        t = specs[0]
        zoo_key = "x_float" if np.dtype(t.dtype).kind == "f" else "x_int8"
        for key in ("x", t.name, "x0", zoo_key):
            if key in keys:
                return [data[key]]
        if len(keys) == 1:
            return [data[keys[0]]]
        raise NpuError("%s has keys %s; name the input's samples 'x'" % (source, ", ".join(keys)))
    arrays = []
    for i, t in enumerate(specs):
        key = t.name if t.name in keys else "x%d" % i
        if key not in keys:
            raise NpuError("%s has keys %s; a model with %d inputs needs one key per input, named "
                           "like the input tensor (%s) or x0, x1, ..."
                           % (source, ", ".join(keys), len(specs), ", ".join(s.name for s in specs)))
        arrays.append(data[key])
    return arrays


def load_inputs(inputs, graph):
    """Samples for the model: a list of per-sample input lists, in the model's dtypes and shapes."""
    specs = _input_specs(graph)
    if inputs is None:
        return generate_inputs(graph)
    source = "inputs"
    if isinstance(inputs, (str, os.PathLike)):
        source = os.fspath(inputs)
        try:
            data = np.load(source, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise NpuError("cannot read inputs %s: %s (expected an .npz with key x, or one key per "
                           "input, or an .npy)" % (source, e)) from e
        arrays = _arrays_from_npz(data, specs, source) if hasattr(data, "keys") else [data]
    elif isinstance(inputs, dict):
        arrays = _arrays_from_npz(inputs, specs, source)
    elif isinstance(inputs, np.ndarray):
        arrays = [inputs]
    else:  # a list of samples, each a list of arrays (one per input)
        samples = [list(s) if isinstance(s, (list, tuple)) else [s] for s in inputs]
        arrays = [np.stack([np.asarray(s[i]) for s in samples]) for i in range(len(specs))]
    if len(arrays) != len(specs):
        raise NpuError("%s gives %d input arrays; the model has %d inputs"
                       % (source, len(arrays), len(specs)))
    per_input = []
    for i, (t, a) in enumerate(zip(specs, arrays)):
        what = "%s (input %d)" % (source, i)
        per_input.append([_as_input(t, x, what) for x in _batch(t, a, what)])
    counts = {len(p) for p in per_input}
    if len(counts) != 1:
        raise NpuError("%s: the inputs have different sample counts %s" % (source, sorted(counts)))
    return [list(s) for s in zip(*per_input)]


def generate_inputs(graph, n=DEFAULT_SAMPLES, seed=SEED):
    """A seeded sample set: int8 inputs uniform over int8, float inputs spanning the int8 range
    of the QUANTIZE that reads them (else standard normal)."""
    rng = np.random.default_rng(seed)
    quantizers = {op.inputs[0]: graph.tensors[op.outputs[0]] for op in graph.ops
                  if op.kind == "QUANTIZE" and op.inputs}
    samples = [[] for _ in range(n)]
    for i in graph.inputs:
        t = graph.tensors[i]
        dtype = np.dtype(t.dtype)
        for s in samples:
            if dtype.kind in "iu":
                info = np.iinfo(dtype)
                lo, hi = max(info.min, -128), min(info.max, 127)
                s.append(rng.integers(lo, hi + 1, t.shape).astype(dtype))
            elif i in quantizers and quantizers[i].scales is not None:
                q = quantizers[i]
                s.append(((rng.integers(-128, 128, t.shape) - q.zero_point) * q.scale).astype(dtype))
            else:
                s.append(rng.standard_normal(t.shape).astype(dtype))
    return samples


# --- comparison ------------------------------------------------------------------------

def _lsb_scale(graph, t):
    """The size of one LSB of tensor t: 1 for integers, the quantization step of the int8
    tensor a DEQUANTIZE reads for a float output (None when unknown)."""
    tensor = graph.tensors[t]
    if np.dtype(tensor.dtype).kind in "iu":
        return 1.0
    for op in graph.ops:
        if t in op.outputs and op.kind == "DEQUANTIZE":
            src = graph.tensors[op.inputs[0]]
            return src.scale if src.scales is not None else None
    return None


def compare(got, want, lsb=1.0):
    """How far `got` is from `want`: bit_exact, max_lsb, mismatched elements, the first one."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape and got.size == want.size:
        got = got.reshape(want.shape)
    if got.shape != want.shape:
        return dict(bit_exact=False, max_lsb=None, mismatched=None, elements=int(want.size),
                    first=None, error="shape %s, expected %s" % (got.shape, want.shape))
    if got.dtype.kind in "iu" and want.dtype.kind in "iu":
        diff = np.abs(got.astype(np.int64) - want.astype(np.int64)).astype(np.float64)
    else:
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        diff = diff / lsb if lsb else diff
    mismatch = got != want
    out = dict(bit_exact=not bool(mismatch.any()), max_lsb=_number(diff.max() if diff.size else 0),
               mismatched=int(mismatch.sum()), elements=int(want.size), first=None)
    if mismatch.any():
        index = tuple(int(i) for i in np.argwhere(mismatch)[0])
        out["first"] = dict(index=list(index), board=_number(got[index]), expected=_number(want[index]))
    return out


def _number(v):
    v = np.asarray(v).item()
    if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53:
        return int(v)
    return v


def _merge(stats):
    """One summary over per-sample comparisons."""
    errors = [s["error"] for s in stats if s.get("error")]
    if errors:
        return dict(bit_exact=False, max_lsb=None, mismatched=None, mismatched_samples=len(stats),
                    first=None, error=errors[0])
    bad = [k for k, s in enumerate(stats) if not s["bit_exact"]]
    first = None
    if bad:
        first = dict(stats[bad[0]]["first"], sample=bad[0])
    return dict(bit_exact=not bad, max_lsb=max((s["max_lsb"] for s in stats), default=0),
                mismatched=sum(s["mismatched"] for s in stats), mismatched_samples=len(bad),
                first=first)


# --- layer by layer --------------------------------------------------------------------

def truncate(model_bytes, op_index, tensor):
    """.tflite bytes of the model cut after op `op_index`, with `tensor` its only output."""
    model = tflite.schema.ModelT.InitFromPackedBuf(bytes(model_bytes), 0)
    sg = model.subgraphs[0]
    sg.operators = list(sg.operators or [])[:op_index + 1]
    sg.outputs = np.asarray([tensor], dtype=np.int32)
    builder = flatbuffers.Builder(max(1024, len(model_bytes)))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


_LAYER_DTYPES = (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.float32), np.dtype(np.uint8))


def tflm_undefined(graph):
    """Why TFLite Micro's output for `graph` is not what the model means, one line per cause,
    or []. Its SPACE_TO_BATCH_ND never sets the pad value (SpaceToBatchParams.output_offset
    stays what the arena held), so a SAME dilated convolution on an input with a non-zero zero
    point reads memory nobody wrote at its borders (LiteRT and the board pad with the zero
    point); and it never resizes, so a batch-space tensor stored with a dynamic batch as 1
    leaves most of the output unwritten."""
    notes = []
    for label, positions, fused in rewrite.fused_patterns(graph):
        x = graph.tensors[fused.inputs[0]]
        s2b = graph.ops[positions[0]]
        batch = graph.tensors[s2b.outputs[0]].shape[0]
        blocks = int(np.prod(graph.tensors[s2b.inputs[1]].data))
        if batch != x.shape[0] * blocks:  # a dynamic batch, stored as 1: TFLM does not resize
            notes.append("op #%d SPACE_TO_BATCH_ND (%s) writes %r with batch %d, not %d: "
                         "TFLite Micro fills only that many blocks of the output"
                         % (s2b.index, label, graph.tensors[s2b.outputs[0]].name, batch,
                            x.shape[0] * blocks))
        elif fused.options["padding"] == "SAME" and x.scales is not None and x.zero_point != 0:
            notes.append("op #%d SPACE_TO_BATCH_ND (%s) pads %r, zero point %d, with a value "
                         "TFLite Micro never sets: its border elements are undefined there"
                         % (graph.ops[positions[0]].index, label, x.name, x.zero_point))
    return notes


def _layers(graph):
    """(position in graph.ops, label, source ops covered) of each place to compare: every
    op, except that a fused pattern is compared once, at its last op, under its own name."""
    patterns = {positions[-1]: (label, positions) for label, positions, _ in
                rewrite.fused_patterns(graph)}
    inside = {p for _, positions in patterns.values() for p in positions[:-1]}
    for k, op in enumerate(graph.ops):
        if k in patterns:
            label, positions = patterns[k]
            covers = ["#%d %s" % (graph.ops[p].index, graph.ops[p].kind) for p in positions]
            yield k, "%s (%s)" % (label, ", ".join(covers)), covers
        elif k not in inside:
            yield k, op.kind, None


def _locate(model_bytes, graph, board, samples, bad_samples, compile_model, name, source,
            run_oracle):
    """The first layer (or fused pattern) whose output on the board differs from the oracle,
    and what was checked."""
    checked = []
    for k, label, covers in _layers(graph):
        op = graph.ops[k]
        t = op.outputs[0] if op.outputs else -1
        if t < 0 or np.dtype(graph.tensors[t].dtype) not in _LAYER_DTYPES:
            continue  # shape arithmetic, not a layer
        cut = truncate(model_bytes, k, t)
        try:
            blob = compile_model(cut, "%s[:%d]" % (source, k + 1))
        except ModelError as e:  # e.g. the middle of a pattern the compiler folds
            lines = str(e).splitlines()
            checked.append(dict(index=op.index, op=label, tensor=graph.tensors[t].name,
                                skipped=True,
                                reason=(lines[1] if len(lines) > 2 else lines[0]).strip()))
            continue
        board.flash(blob, name=name)
        oracle = run_oracle(cut)
        lsb = _lsb_scale(graph, t)
        stats = []
        for s in bad_samples:
            got = board.invoke(name, samples[s])[0][0]
            stats.append(compare(got, oracle(samples[s])[0], lsb))
        merged = _merge(stats)
        if merged["first"] is not None:
            merged["first"]["sample"] = bad_samples[merged["first"]["sample"]]
        row = dict(index=op.index, op=label, covers=covers, tensor=graph.tensors[t].name,
                   shape=list(graph.tensors[t].shape), skipped=False, bit_exact=merged["bit_exact"],
                   max_lsb=merged["max_lsb"], mismatched=merged["mismatched"], first=merged["first"])
        if merged.get("error"):
            row["error"] = merged["error"]
        checked.append(row)
        if not merged["bit_exact"]:
            return row, checked
    return None, checked


# --- the whole validation ----------------------------------------------------------------

def _litert(model_bytes, samples):
    try:
        interpreter = reference.litert_interpreter(model_bytes, builtin=True)
        return [reference.run_litert(model_bytes, s, interpreter=interpreter) for s in samples], None
    except (RuntimeError, ValueError) as e:  # LiteRT cannot run it: reported, not fatal
        return None, "%s: %s" % (type(e).__name__, e)


def _reference_child(conn, model_bytes, samples, oracle_bytes=None):
    """In the child: TFLite Micro's outputs (on `oracle_bytes` where given: the model with its
    fused patterns written back as one op) and LiteRT's, or the error TFLite Micro raised."""
    try:
        oracle_bytes = model_bytes if oracle_bytes is None else oracle_bytes
        oracle = reference.tflm_interpreter(oracle_bytes)
        want = [reference.run_tflm(oracle_bytes, s, oracle) for s in samples]
    except Exception as e:  # noqa: BLE001 - sent to the parent, which names it
        conn.send(("error", "%s: %s" % (type(e).__name__, e)))
        return
    conn.send(("ok", want) + _litert(model_bytes, samples))


def reference_outputs(model_bytes, samples, source, target=_reference_child, oracle_bytes=None):
    """(TFLite Micro's outputs, LiteRT's or None, LiteRT's error or None) for each sample, run
    in a child process: the reference runtimes are native code, and one that crashes on a
    model takes the child down, not `npu validate` (NpuError naming the signal)."""
    import multiprocessing
    import signal
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(child, model_bytes, samples, oracle_bytes), daemon=True)
    proc.start()
    child.close()
    try:
        result = parent.recv()
    except EOFError:  # the child died before it answered
        result = None
    proc.join()
    if result is None:
        code = proc.exitcode
        how = ("signal %d, %s" % (-code, signal.Signals(-code).name) if code is not None and code < 0
               else "exit code %s" % code)
        raise NpuError("the reference runtimes (TFLite Micro, LiteRT) crashed running %s (%s): "
                       "they cannot check this model; run it on the board with `npu run`"
                       % (source, how))
    if result[0] == "error":
        raise ModelError("TFLite Micro cannot run %s (%s): it is no reference for this model"
                         % (source, result[1]))
    return result[1:]


def validate(model_path, board, inputs=None, *, name="validate", locate=True, compile_model=None):
    """Compile the int8 .tflite at `model_path`, run it on `board` (an npu_sdk.link.Board) and
    compare with TFLite Micro and LiteRT; returns the report dict (see format_text).

    `inputs`: None (a generated sample set), a path to an .npz / .npy, an array or a list of
    per-sample input lists. `name` is the model name used on the board (its layer models
    are flashed under the same name while locating a difference). `compile_model(bytes,
    source) -> blob bytes` replaces the compiler (tests use it to break one layer).
    """
    source = os.fspath(model_path)
    try:
        with open(source, "rb") as f:
            model_bytes = f.read()
    except OSError as e:
        raise ModelError("cannot read model %s: %s" % (source, e.strerror or e)) from e
    graph = tflite.parse(model_bytes, source=source)
    if is_float_model(graph):
        raise ModelError("%s is a float model; validate takes an int8 .tflite (quantize it first: "
                         "`npu compile %s --calib DATA.npy`)" % (source, source))
    compile_model = compile_model or _default_compile
    blob = compile_model(model_bytes, source)
    samples = load_inputs(inputs, graph)

    board.flash(blob, name=name)
    got = [board.invoke(name, s)[0] for s in samples]
    undefined = tflm_undefined(graph)
    run_oracle = _tflm_fused_runner if undefined else _tflm_runner
    want, lite, lite_error = reference_outputs(
        model_bytes, samples, source, oracle_bytes=_fused_model(model_bytes) if undefined else None)

    outputs = []
    for j, t in enumerate(graph.outputs):
        tensor = graph.tensors[t]
        lsb = _lsb_scale(graph, t)
        row = dict(index=j, name=tensor.name, shape=list(tensor.shape), dtype=str(np.dtype(tensor.dtype)),
                   lsb=lsb, tflm=_merge([compare(g[j], w[j], lsb) for g, w in zip(got, want)]))
        if lite is not None:
            row["litert"] = _merge([compare(g[j], r[j], lsb) for g, r in zip(got, lite)])
            row["tflm_vs_litert"] = _merge([compare(w[j], r[j], lsb) for w, r in zip(want, lite)])
        outputs.append(row)

    bit_exact = all(o["tflm"]["bit_exact"] for o in outputs)
    info = board.info
    rep = dict(model=source, board=getattr(info, "board", None), kernels=getattr(info, "kernels", None),
               firmware=getattr(info, "firmware", None), samples=len(samples),
               inputs="generated (seed %d)" % SEED if inputs is None else
               (os.fspath(inputs) if isinstance(inputs, (str, os.PathLike)) else "given"),
               blob_bytes=len(blob), ops=len(graph.ops), bit_exact=bit_exact,
               max_lsb_tflm=_max(o["tflm"]["max_lsb"] for o in outputs),
               max_lsb_litert=None if lite is None else _max(o["litert"]["max_lsb"] for o in outputs),
               litert_error=lite_error, outputs=outputs, first_difference=None, layers=[],
               oracle=ORACLE_FUSED if undefined else "TFLite Micro", tflm_undefined=undefined)
    if not bit_exact and locate:
        bad = sorted({k for k, (g, w) in enumerate(zip(got, want))
                      if any(not compare(gj, wj)["bit_exact"] for gj, wj in zip(g, w))})
        first, checked = _locate(model_bytes, graph, board, samples, bad[:MAX_LAYER_SAMPLES],
                                 compile_model, name, source, run_oracle)
        rep["first_difference"], rep["layers"] = first, checked
    return rep


def _tflm_runner(model_bytes):
    interpreter = reference.tflm_interpreter(model_bytes)
    return lambda sample: reference.run_tflm(model_bytes, sample, interpreter)


def _fused_model(model_bytes):
    """The model with its dilated convolutions fused back into one op (written by
    tflite_writer): TFLite Micro's own SPACE_TO_BATCH_ND would pad with an unset value."""
    return tflite_writer.write(rewrite.simplify(tflite.parse(model_bytes), (rewrite.fold_dilated_conv,)))


def _tflm_fused_runner(model_bytes):
    return _tflm_runner(_fused_model(model_bytes))


def _max(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


# --- text ----------------------------------------------------------------------------------

def _lsb_text(v):
    return "?" if v is None else ("%d" % v if isinstance(v, int) else "%.3g" % v)


def format_text(rep):
    """The report as the lines `npu validate` prints."""
    lines = ["%s on %s (%s kernels): %d sample(s), %s" % (
        rep["model"], rep.get("board") or "board", rep.get("kernels") or "?", rep["samples"],
        rep["inputs"])]
    for o in rep["outputs"]:
        shape = "x".join(map(str, o["shape"]))
        t = o["tflm"]
        if t.get("error"):
            verdict = "ERROR vs TFLite Micro: %s" % t["error"]
        elif t["bit_exact"]:
            verdict = "bit-exact with TFLite Micro"
        else:
            verdict = ("DIFFERS from TFLite Micro: max %s LSB, %d element(s) in %d sample(s)"
                       % (_lsb_text(t["max_lsb"]), t["mismatched"], t["mismatched_samples"]))
        if "litert" in o:
            r = o["litert"]
            verdict += "; LiteRT: %s" % ("identical" if r["bit_exact"] else
                                        "max %s LSB" % _lsb_text(r["max_lsb"]))
        lines.append("  output %d %r %s %s: %s" % (o["index"], o["name"], o["dtype"], shape, verdict))
    if rep.get("litert_error"):
        lines.append("  LiteRT could not run the model: %s" % rep["litert_error"])
    for note in rep.get("tflm_undefined", ()):
        lines.append("  note: %s" % note)
    oracle = rep.get("oracle", "TFLite Micro")
    if oracle != "TFLite Micro":
        lines.append("  so the oracle is %s" % oracle)
    if rep["bit_exact"]:
        lines.append("PASS: bit-exact with %s" % oracle)
        return "\n".join(lines)
    first = rep.get("first_difference")
    if first is not None:
        where = first["op"] if first.get("covers") else "op #%d %s" % (first["index"], first["op"])
        lines.append("first differing %s: %s -> %r %s: max %s LSB, %s element(s) differ"
                     % ("pattern" if first.get("covers") else "layer", where, first["tensor"],
                        "x".join(map(str, first["shape"])), _lsb_text(first["max_lsb"]),
                        first["mismatched"]))
        f = first.get("first")
        if f:
            lines.append("  first element %s of sample %d: board %s, %s %s"
                         % (f["index"], f["sample"], f["board"], oracle, f["expected"]))
    elif rep.get("layers"):
        lines.append("every layer checked alone matches %s; the difference comes from "
                     "how the layers are combined (arena planning?)" % oracle)
    skipped = [r for r in rep.get("layers", []) if r.get("skipped")]
    if skipped:
        lines.append("  (%d layer(s) could not be compiled alone and were skipped: %s)"
                     % (len(skipped), ", ".join("#%d %s" % (r["index"], r["op"]) for r in skipped)))
    lines.append("FAIL: the board differs from %s" % oracle)
    return "\n".join(lines)
