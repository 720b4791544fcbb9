"""Every reader of untrusted bytes refuses bad input with its own error, never another one,
never a hang: the .tflite reader and the compiler (ModelError), the SDK's blob reader
(BlobFormatError) and the firmware's (blobfmt.BlobError).

Property tests over mutated, truncated and extended valid files (the zoo, the fixtures
and the converter-made conformance models), derandomized and bounded so CI sees the same
examples every run. tools/fuzz_atheris.py runs the same targets for as long as you like.
"""
import binascii
import contextlib
import hashlib
import signal
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npu_sdk import blob, compiler, tflite
from npu_sdk.errors import BlobFormatError, ModelError
from npufw import blobfmt
from tests.conftest import ROOT, ZOO

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SECONDS = 20  # per example: far above the milliseconds one takes, so only a hang trips it

TFLITE_FILES = sorted(ZOO.glob("*/int8*.tflite")) + sorted((ROOT / "tests" / "fixtures").glob("*.tflite"))
CONFORMANCE = ROOT / "tests" / "conformance" / "models"
TFLITE_FILES += [CONFORMANCE / n for n in ("conv_dil2x1_valid_relu.tflite", "dw_3x3_s2_valid_m2.tflite",
                                           "requantize_concat.tflite", "padv2_constant.tflite",
                                           "mean_keepdims.tflite", "add_broadcast_inputs_relu.tflite")
                 if (CONFORMANCE / n).exists()]
TFLITES = [p.read_bytes() for p in TFLITE_FILES]


@contextlib.contextmanager
def no_hang(seconds=SECONDS):
    def alarm(signum, frame):
        raise AssertionError("the reader ran for more than %d s: a hang" % seconds)
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


_INT32_EDGES = [b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00",
                b"\x01\x00\x00\x00", b"\x00\x00\x01\x00"]

# (kind, position, payload): position is taken modulo the length
MUTATION = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=4)),
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(0, 7)),
    st.tuples(st.just("int32"), st.integers(0, 1 << 20), st.sampled_from(_INT32_EDGES)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 20), st.just(None)),
    st.tuples(st.just("append"), st.just(0), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("copy"), st.integers(0, 1 << 20), st.integers(0, 1 << 20)),
)


def mutate(data, mutations):
    d = bytearray(data)
    for kind, pos, arg in mutations:
        if not d:
            break
        i = pos % len(d)
        if kind == "set":
            d[i:i + len(arg)] = arg[:len(d) - i]
        elif kind == "flip":
            d[i] ^= 1 << arg
        elif kind == "int32":
            i -= i % 4  # flatbuffer scalars and offsets are 4-byte aligned
            d[i:i + 4] = arg[:len(d) - i]
        elif kind == "cut":
            del d[i:]
        elif kind == "append":
            d += arg
        elif kind == "insert":
            d[i:i] = arg
        else:  # copy 8 bytes from elsewhere in the file (offsets into real tables)
            j = arg % len(d)
            d[i:i + 8] = d[j:j + 8][:len(d) - i]
    return bytes(d)


@SETTINGS
@given(st.sampled_from(range(len(TFLITES))), st.lists(MUTATION, min_size=1, max_size=4))
def test_damaged_tflite_raises_only_model_error(which, mutations):
    data = mutate(TFLITES[which], mutations)
    with no_hang():
        try:
            graph = tflite.parse(data, source="fuzzed.tflite")
            compiler.compile_graph(graph)
        except ModelError as e:  # UnsupportedOpError included
            assert str(e).strip()


@pytest.mark.parametrize("index", range(len(TFLITES)), ids=[p.name for p in TFLITE_FILES])
def test_every_truncation_of_a_tflite_is_refused(index):
    data = TFLITES[index]
    for cut in list(range(0, 64)) + list(range(64, len(data), max(1, len(data) // 97))):
        with pytest.raises(ModelError):
            tflite.parse(data[:cut])


@pytest.fixture(scope="module")
def blobs():
    out = []
    for data in TFLITES:
        try:
            out.append(compiler.compile_graph(tflite.parse(data)).blob)
        except ModelError:  # a fixture the compiler refuses on purpose
            pass
    assert len(out) >= 4
    return out


def reseal(data, crc=True, sha=True):
    """Make the damage reach the parsers: recompute the header CRC and the SHA-256."""
    d = bytearray(data)
    if crc and len(d) >= 24:
        d[20:24] = struct.pack("<I", binascii.crc32(bytes(d[:20])))
    if sha and len(d) >= 32:
        d[-32:] = hashlib.sha256(bytes(d[:-32])).digest()
    return bytes(d)


def _header_mutation():
    # the header's fields, where damage is worst: one of them set to a random value
    return st.tuples(st.just("set"), st.integers(4, 19), st.binary(min_size=1, max_size=2))


@SETTINGS
@given(st.data(), st.lists(st.one_of(MUTATION, _header_mutation()), min_size=1, max_size=3),
       st.sampled_from(["crc+sha", "sha", "none"]))
def test_damaged_blob_sdk_reader_raises_only_blob_format_error(blobs, data, mutations, seal):
    original = blobs[data.draw(st.integers(0, len(blobs) - 1))]
    damaged = reseal(mutate(original, mutations), crc=seal == "crc+sha", sha=seal != "none")
    with no_hang():
        try:
            blob.unpack(damaged)
        except BlobFormatError as e:
            assert str(e).strip()


@SETTINGS
@given(st.data(), st.lists(st.one_of(MUTATION, _header_mutation()), min_size=1, max_size=3),
       st.sampled_from(["crc+sha", "sha", "none"]))
def test_damaged_blob_firmware_reader_raises_only_blob_error(blobs, data, mutations, seal):
    original = blobs[data.draw(st.integers(0, len(blobs) - 1))]
    damaged = reseal(mutate(original, mutations), crc=seal == "crc+sha", sha=seal != "none")
    with no_hang():
        try:
            fw = blobfmt.parse(damaged)
        except blobfmt.BlobError as e:
            assert str(e).strip()
            return
    # What the firmware accepts, the SDK's spec reads the same way (the firmware checks more).
    spec = blob.unpack(damaged)
    assert [(o.opcode, list(o.inputs), list(o.outputs), list(o.params)) for o in fw.ops] == [
        (o.opcode, list(o.inputs), list(o.outputs), list(o.params)) for o in spec.ops]
    assert fw.arena_size == spec.header.value.arena_size and fw.const_size == len(spec.constants)


# --- a header that declares more than the file holds ------------------------------------------

def _with_header(data, **fields):
    """`data` with header fields replaced (offsets per docs/blob-format.md), CRC and SHA valid."""
    layout = dict(n_tensors=(6, "<H"), n_ops=(8, "<H"), n_inputs=(10, "<B"), n_outputs=(11, "<B"),
                  arena_size=(12, "<I"), const_size=(16, "<I"))
    d = bytearray(data)
    for name, value in fields.items():
        offset, fmt = layout[name]
        struct.pack_into(fmt, d, offset, value)
    return reseal(bytes(d))


@pytest.mark.parametrize("fields", [dict(n_tensors=65535), dict(const_size=2 ** 31),
                                    dict(n_ops=65535), dict(const_size=2 ** 32 - 1, n_tensors=65535),
                                    dict(n_inputs=255, n_outputs=255)],
                         ids=["n_tensors", "const_size", "n_ops", "both", "io"])
def test_header_declaring_more_than_the_file_is_refused_up_front(blobs, fields):
    tampered = _with_header(blobs[0], **fields)
    with no_hang(5):
        with pytest.raises(BlobFormatError, match="declares"):
            blob.unpack(tampered)
        with pytest.raises(blobfmt.BlobError, match="declares"):
            blobfmt.parse(tampered)


def test_resealed_header_damage_is_named(blobs):
    """A header CRC that does not match is reported as such by both readers."""
    d = bytearray(blobs[0])
    d[6] ^= 1  # n_tensors, CRC left stale, SHA recomputed
    d = reseal(bytes(d), crc=False)
    with pytest.raises(BlobFormatError, match="CRC"):
        blob.unpack(d)
    with pytest.raises(blobfmt.BlobError, match="CRC"):
        blobfmt.parse(d)


def test_malformed_graphs_are_model_errors():
    """What the fuzzer found, pinned: op indices out of range, scales without zero points,
    a tensor larger than the blob can hold, an op without inputs."""
    data = (ZOO / "digits_mlp" / "int8.tflite").read_bytes()
    model = tflite.schema.ModelT.InitFromPackedBuf(data, 0)
    sg = model.subgraphs[0]

    def build():
        import flatbuffers
        b = flatbuffers.Builder(1024)
        b.Finish(model.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    inputs = list(sg.operators[1].inputs)
    sg.operators[1].inputs = [999] + inputs[1:]
    with pytest.raises(ModelError, match="refers to tensor 999"):
        tflite.parse(build())
    sg.operators[1].inputs = inputs
    shape = list(sg.tensors[0].shape)
    sg.tensors[0].shape = [1, 1 << 30, 8]
    with pytest.raises(ModelError, match="needs .* bytes"):
        tflite.parse(build())
    sg.tensors[0].shape = shape
    sg.tensors[0].quantization.zeroPoint = [1000]
    with pytest.raises(ModelError, match="zero point outside"):
        tflite.parse(build())
    model = tflite.schema.ModelT.InitFromPackedBuf(data, 0)
    sg = model.subgraphs[0]
    sg.operators[4].inputs = []  # SOFTMAX without its input
    with pytest.raises(ModelError, match="op #4 SOFTMAX: needs 1 inputs, has 0"):
        compiler.compile_graph(tflite.parse(build()))
