"""The firmware's frame codec and blob reader on the real MicroPython VM, against the SDK's."""
import json
import random

from npu_sdk import blob, compiler
from npu_sdk.link import codec
from tests.conftest import DIGITS_FLOAT_IO, DIGITS_INT8

from .mp_harness import VM_STEP_CLOCK, run_script

_SCRIPT = """
import json
from npufw import blobfmt, frame
with open(DATA_DIR + '/frames.bin', 'rb') as f:
    stream = f.read()
d = frame.Deframer(8192)
out = []
for i in range(0, len(stream), 37):  # arbitrary chunking
    for raw in d.feed(stream[i:i + 37]):
        m = frame.decode(raw)
        out.append(None if m is None else [m[0], m[1], m[2].hex()])
blobs = []
for name in ('a.npb', 'b.npb', 'bad.npb'):
    with open(DATA_DIR + '/' + name, 'rb') as f:
        data = f.read()
    try:
        b = blobfmt.parse(data)
        blobs.append([b.arena_size, b.inputs, b.outputs,
                      [[o.opcode, list(o.inputs), list(o.outputs), list(o.params)] for o in b.ops],
                      [[t.dtype, t.location, list(t.shape), t.zero_point, t.offset, t.size] for t in b.tensors]])
    except blobfmt.BlobError as e:
        blobs.append(str(e))
print(json.dumps([out, blobs, frame.encode(6, 200, b'}~x').hex()]))
"""


def test_vm_decodes_what_the_sdk_encodes():
    rng = random.Random(1)
    payloads = [b"", b"~}~}", bytes(range(256))] + [
        bytes(rng.randrange(256) for _ in range(rng.randrange(300))) for _ in range(30)]
    stream = b"".join(codec.encode(i % 7 + 1, i, p) for i, p in enumerate(payloads))
    damaged = bytearray(codec.encode(1, 1, b"hello"))
    damaged[4] ^= 4
    stream += bytes(damaged) + b"noise" + codec.encode(2, 2, b"after")
    a = compiler.compile_file(DIGITS_INT8).blob
    b = compiler.compile_file(DIGITS_FLOAT_IO).blob
    bad = bytearray(a)
    bad[100] ^= 1
    stdout, _ = run_script(_SCRIPT, {"frames.bin": stream, "a.npb": a, "b.npb": b, "bad.npb": bytes(bad)})
    frames, blobs, encoded = json.loads(stdout)

    # the frames, a damaged frame, then the noise between flags
    expected = [[i % 7 + 1, i, p.hex()] for i, p in enumerate(payloads)] + [None, None, [2, 2, b"after".hex()]]
    assert frames == expected
    assert bytes.fromhex(encoded) == codec.encode(6, 200, b"}~x")
    for data, got in ((a, blobs[0]), (b, blobs[1])):
        spec = blob.unpack(data)
        assert got[0] == spec.header.value.arena_size
        assert got[3] == [[o.opcode, list(o.inputs), list(o.outputs), list(o.params)] for o in spec.ops]
        assert got[4] == [[int(t.dtype), int(t.location), list(t.shape[:t.ndim]), t.zero_point, t.offset,
                           t.size] for t in spec.tensors]
    assert "SHA-256" in blobs[2]


_SESSION_SCRIPT = VM_STEP_CLOCK + """
import json
from npufw import frame, kernels
from npufw.board import Board
from npufw.server import Server
from npufw.store import Store
with open(DATA_DIR + '/session.json') as f:
    v = json.load(f)
with open(DATA_DIR + '/frames.json') as f:
    fv = json.load(f)
srv = Server(Board(None, Store(DATA_DIR + '/flash', v['limits']['flash']), Clock, kernels,
                   dict(v['limits']), v['kernels']))
srv.seed = bytes.fromhex(v['seed'])
answers = []
for step in v['session']:
    a = srv.handle(bytes.fromhex(step['request'])[1:-1])
    answers.append(None if a is None else a.hex())
encoded = [frame.encode(c['type'], c['seq'], bytes.fromhex(c['payload'])).hex() for c in fv['frames']]
decoded = [list(m[:2]) + [m[2].hex()] for m in
           (frame.decode(bytes.fromhex(c['wire'])[1:-1]) for c in fv['frames'])]
damaged = [frame.decode(bytes.fromhex(raw)) for raw in fv['damaged']]
import os
for f in os.listdir(DATA_DIR + '/flash'):
    os.remove(DATA_DIR + '/flash/' + f)
os.rmdir(DATA_DIR + '/flash')
print(json.dumps([answers, encoded, decoded, damaged]))
"""


def test_protocol_vectors_on_the_vm():
    """The golden vectors (tools/make_protocol_vectors.py) through the firmware on the VM:
    every frame, and a whole session of requests with the board's answers."""
    from tests.conftest import ROOT
    from tests.unit.test_codec import same_answer
    vectors = ROOT / "tests" / "vectors" / "protocol"
    session = json.loads((vectors / "session.json").read_text())
    frames = json.loads((vectors / "frames.json").read_text())
    stdout, _ = run_script(_SESSION_SCRIPT, {"session.json": (vectors / "session.json").read_bytes(),
                                             "frames.json": (vectors / "frames.json").read_bytes()})
    answers, encoded, decoded, damaged = json.loads(stdout)
    for step, got in zip(session["session"], answers):
        want = step["answer"] and bytes.fromhex(step["answer"])
        assert same_answer(got and bytes.fromhex(got), want), step["note"]
    assert encoded == [c["wire"] for c in frames["frames"]]
    assert decoded == [[c["type"], c["seq"], c["payload"]] for c in frames["frames"]]
    assert damaged == [None] * len(frames["damaged"])


_HMAC_SCRIPT = """
import json
from npufw import sign
with open(DATA_DIR + '/cases.json') as f:
    cases, names = json.load(f)
print(json.dumps([sign.hmac_sha256(bytes.fromhex(k), bytes.fromhex(m)).hex() for k, m in cases]
                 + [sign.blob_mac(bytes(range(32)), bytes(32), n, 70000, 1, b'nonce').hex() for n in names]
                 + [sign.equal(b'ab', b'ab'), sign.equal(b'ab', b'ac')]))
"""


def test_vm_hmac_is_pythons():
    """The firmware's hand-made HMAC-SHA256 on the VM (no hmac module there) equals Python's,
    and its blob MAC the host's, non-ASCII names included (both sign the name as UTF-8)."""
    import hmac
    rng = random.Random(3)
    cases = [(bytes(rng.randrange(256) for _ in range(n)), bytes(rng.randrange(256) for _ in range(m)))
             for n, m in ((0, 0), (32, 40), (63, 1), (64, 64), (65, 7), (200, 300))]
    names = ["m", "modèle_ü", "模型.npb"]
    stdout, _ = run_script(_HMAC_SCRIPT, {"cases.json": json.dumps(
        [[[k.hex(), m.hex()] for k, m in cases], names]).encode()})
    got = json.loads(stdout)
    assert got[:len(cases)] == [hmac.new(k, m, "sha256").hexdigest() for k, m in cases]
    assert got[len(cases):-2] == [codec.blob_mac(bytes(range(32)), bytes(32), n, 70000, 1, b"nonce").hex()
                                   for n in names]
    assert got[-2:] == [True, False]
