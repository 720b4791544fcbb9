"""Blobs with valid checksums whose tables do not hold together (indices out of range, a zero
dimension): `npu inspect` and `npu flash` say so in one `npu:` line, exit 1, no traceback."""
import subprocess
import sys

import pytest

from tests.conftest import DIGITS_INT8
from tools.fuzz_blobs import edit

_BLOB = []


def _digits():
    if not _BLOB:
        from npu_sdk import compiler, tflite
        _BLOB.append(compiler.compile_graph(tflite.parse(DIGITS_INT8.read_bytes())).blob)
    return _BLOB[0]


def _io(body):
    body.inputs[0] = len(body.tensors) + 3


def _op(body):
    body.ops[0].inputs[0] = len(body.tensors) + 5


def _zero(body):
    t = body.tensors[body.ops[0].inputs[1]]
    t.shape[0], t.size = 0, 0


@pytest.mark.parametrize("change, words", [(_io, "not an arena tensor"),
                                           (_op, "tensor index"), (_zero, "has shape [0,")],
                         ids=["io index", "op index", "zero dim"])
@pytest.mark.parametrize("command", ["inspect", "flash"])
def test_resealed_bad_tables_give_one_line(tmp_path, change, words, command):
    path = tmp_path / "bad.npb"
    path.write_bytes(edit(_digits(), change))
    args = [sys.executable, "-m", "npu_sdk", command, str(path)]
    if command == "flash":
        args += ["--port", "loop://"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("npu: malformed blob:") and words in r.stderr, r.stderr
