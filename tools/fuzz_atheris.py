#!/usr/bin/env python3
"""Long coverage-guided fuzzing of the readers of untrusted bytes (outside CI).

Usage:
    pip install atheris
    python tools/fuzz_atheris.py tflite  [libFuzzer options, e.g. -max_total_time=3600 CORPUS_DIR]
    python tools/fuzz_atheris.py blob    [...]
    python tools/fuzz_atheris.py blobfw  [...]

Targets (the same contracts tests/unit/test_fuzz_readers.py checks with hypothesis):
  tflite  tflite.parse then compiler.compile_graph raise only ModelError
  blob    npu_sdk.blob.unpack raises only BlobFormatError
  blobfw  the firmware's npufw.blobfmt.parse raises only blobfmt.BlobError

Any other exception is a finding: atheris stops and writes the input as crash-*.
The blob targets recompute the header CRC and the SHA-256 of each input, so the
fuzzer's changes reach the parsers instead of stopping at the checksums. The
corpus is seeded with the zoo models, the test fixtures and the conformance models
(and their compiled blobs) unless a corpus directory with files is given.
"""
import binascii
import hashlib
import os
import struct
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "sdk"), str(ROOT / "firmware")]

import atheris  # noqa: E402

with atheris.instrument_imports():
    from npu_sdk import blob, compiler, tflite  # noqa: E402
    from npu_sdk.errors import BlobFormatError, ModelError  # noqa: E402
    from npufw import blobfmt  # noqa: E402


def _seal(data):
    d = bytearray(data)
    if len(d) >= 24:
        d[20:24] = struct.pack("<I", binascii.crc32(bytes(d[:20])))
    if len(d) >= 32:
        d[-32:] = hashlib.sha256(bytes(d[:-32])).digest()
    return bytes(d)


def fuzz_tflite(data):
    try:
        compiler.compile_graph(tflite.parse(data, source="fuzz"))
    except ModelError:
        pass


def fuzz_blob(data):
    try:
        blob.unpack(_seal(data))
    except BlobFormatError:
        pass


def fuzz_blobfw(data):
    try:
        blobfmt.parse(_seal(data))
    except blobfmt.BlobError:
        pass


TARGETS = {"tflite": fuzz_tflite, "blob": fuzz_blob, "blobfw": fuzz_blobfw}


def _seeds(target):
    models = (sorted((ROOT / "model_zoo").glob("*/int8*.tflite"))
              + sorted((ROOT / "tests" / "fixtures").glob("*.tflite"))
              + sorted((ROOT / "tests" / "conformance" / "models").glob("*.tflite")))
    for path in models:
        data = path.read_bytes()
        if target == "tflite":
            yield path.stem, data
            continue
        try:
            yield path.stem, compiler.compile_graph(tflite.parse(data)).blob
        except ModelError:
            pass


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit("usage: fuzz_atheris.py {%s} [libFuzzer options] [CORPUS_DIR]" % ",".join(TARGETS))
    target = sys.argv[1]
    args = [sys.argv[0]] + sys.argv[2:]
    dirs = [a for a in args[1:] if not a.startswith("-")]
    if not any(os.path.isdir(d) and os.listdir(d) for d in dirs):
        corpus = dirs[0] if dirs else tempfile.mkdtemp(prefix="npu-fuzz-%s-" % target)
        os.makedirs(corpus, exist_ok=True)
        for name, data in _seeds(target):
            Path(corpus, name).write_bytes(data)
        if not dirs:
            args.append(corpus)
        print("seed corpus: %s" % corpus, file=sys.stderr)
    atheris.Setup(args, TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
