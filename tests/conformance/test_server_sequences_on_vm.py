"""The firmware on the MicroPython VM and on CPython answer any request sequence alike.

The sequences are tests/unit/test_server_sequences.py's (a buggy or hostile host, board
restarts in between); each runs through the firmware on CPython and on the real VM, and
every answer and every file left on the flash must be the same on both. The golden
vectors pin one scripted session; this finds where the two Pythons part ways off it
(a builtin that differs, an error raised on one only).

Bounded and derandomized; NPU_FUZZ_EXAMPLES sets how many (default 15, one VM run each).
"""
import hashlib
import json
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_codec import same_answer
from tests.unit.test_server_sequences import STEP, new_server, session

from .mp_harness import VM_STEP_CLOCK, run_script

EXAMPLES = max(1, int(os.environ.get("NPU_FUZZ_EXAMPLES", "150")) // 10)

_SCRIPT = VM_STEP_CLOCK + """
import json, os, hashlib
from npufw import kernels
from npufw.board import Board
from npufw.server import Server
from npufw.store import Store
from npufw.frame import encode
root = DATA_DIR + '/flash'
def server():
    limits = {'ram': 1 << 20, 'flash': 64 * 1024, 'board': 'fuzz'}
    return Server(Board(None, Store(root, 64 * 1024), Clock, kernels, limits, 'c'))
with open(DATA_DIR + '/session.json') as f:
    items = json.load(f)
srv = server()
answers = []
for item in items:
    if item == 'restart':
        srv = server()
        continue
    a = srv.handle(encode(item[0], item[1], bytes.fromhex(item[2]))[1:-1])
    answers.append(None if a is None else a.hex())
files = {}
for f in os.listdir(root):
    with open(root + '/' + f, 'rb') as fh:
        files[f] = hashlib.sha256(fh.read()).digest().hex()
    os.remove(root + '/' + f)
os.rmdir(root)
print(json.dumps([answers, files]))
"""


def on_cpython(items):
    from npu_sdk.link import codec
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "flash")
        srv, answers = new_server(root), []
        for item in items:
            if item == "restart":
                srv = new_server(root)
                continue
            a = srv.handle(codec.encode(*item)[1:-1])
            answers.append(a)
        files = {}
        for f in os.listdir(root):
            with open(os.path.join(root, f), "rb") as fh:
                files[f] = hashlib.sha256(fh.read()).hexdigest()
        return answers, files


@given(st.lists(STEP, max_size=40))
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
def test_vm_and_cpython_firmware_answer_any_sequence_alike(steps):
    items = session(steps)
    wire = [item if item == "restart" else [item[0], item[1], item[2].hex()] for item in items]
    stdout, _ = run_script(_SCRIPT, {"session.json": json.dumps(wire).encode()})
    vm_answers, vm_files = json.loads(stdout)
    answers, files = on_cpython(items)
    requests = [item for item in items if item != "restart"]
    for request, got, want in zip(requests, vm_answers, answers):
        assert same_answer(got and bytes.fromhex(got), want), (request[0], request[1])
    assert len(vm_answers) == len(answers) and vm_files == files
