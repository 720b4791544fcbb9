"""The blob format: construct spec, the firmware's struct reader, and their agreement."""
import hashlib

import pytest

from npu_sdk import blob, compiler
from npu_sdk.errors import BlobFormatError
from npufw import blobfmt
from tests.conftest import DIGITS_FLOAT_IO, DIGITS_INT8, ROOT

GOLDEN = ROOT / "tests" / "vectors" / "digits_int8.npb"


@pytest.fixture(scope="module")
def digits_blob():
    return compiler.compile_file(DIGITS_INT8).blob


def test_round_trip_is_byte_identical(digits_blob):
    body = blob.unpack(digits_blob)
    rebuilt = blob.pack(body.header.value.arena_size,
                        [dict(t) for t in body.tensors], list(body.inputs), list(body.outputs),
                        [dict(opcode=o.opcode, inputs=list(o.inputs), outputs=list(o.outputs),
                              params=list(o.params)) for o in body.ops], body.constants)
    assert rebuilt == digits_blob


def test_compile_is_deterministic_and_matches_golden(digits_blob):
    again = compiler.compile_file(DIGITS_INT8).blob
    assert hashlib.sha256(again).digest() == hashlib.sha256(digits_blob).digest()
    assert digits_blob == GOLDEN.read_bytes(), (
        "the blob bytes changed: if the schema changed, bump blob.VERSION (and the firmware's "
        "blobfmt.VERSION), then regenerate with `python tools/make_vectors.py`")


@pytest.mark.parametrize("model", [DIGITS_INT8, DIGITS_FLOAT_IO])
def test_firmware_reader_agrees_with_construct(model):
    data = compiler.compile_file(model).blob
    spec = blob.unpack(data)
    fw = blobfmt.parse(data)
    assert fw.arena_size == spec.header.value.arena_size
    assert fw.inputs == list(spec.inputs) and fw.outputs == list(spec.outputs)
    assert [(t.dtype, t.location, t.shape, t.zero_point, t.offset, t.size) for t in fw.tensors] == [
        (int(t.dtype), int(t.location), tuple(t.shape[:t.ndim]), t.zero_point, t.offset, t.size)
        for t in spec.tensors]
    assert [(o.opcode, list(o.inputs), list(o.outputs), list(o.params)) for o in fw.ops] == [
        (o.opcode, list(o.inputs), list(o.outputs), list(o.params)) for o in spec.ops]
    assert data[fw.const_start:fw.const_start + fw.const_size] == spec.constants


def test_firmware_tables_match_the_spec():
    assert blobfmt.VERSION == blob.VERSION and blobfmt.MAGIC == blob.MAGIC
    assert {code: name for code, (name, _, _) in blobfmt.OPS.items()} == blob.OPNAMES
    assert {name: n for name, _, n in blobfmt.OPS.values()} == {k: len(v) for k, v in blob.PARAMS.items()}
    assert {name: int(blob.DType.build(name)[0]) for name in blob.DType.encmapping} == {
        name: code for name, code in blob.DType.encmapping.items()}
    assert set(blobfmt.DTYPE_SIZE) == set(blob.DType.decmapping)


@pytest.mark.parametrize("position", [0, 5, 21, 60, 200, -40, -1])
def test_any_flipped_bit_is_refused_by_both_readers(digits_blob, position):
    damaged = bytearray(digits_blob)
    damaged[position] ^= 0x10
    with pytest.raises(BlobFormatError):
        blob.unpack(damaged)
    with pytest.raises(blobfmt.BlobError):
        blobfmt.parse(damaged)


@pytest.mark.parametrize("cut", [1, 31, 33, 1000])
def test_truncated_blob_is_refused(digits_blob, cut):
    with pytest.raises(BlobFormatError):
        blob.unpack(digits_blob[:-cut])
    with pytest.raises(blobfmt.BlobError):
        blobfmt.parse(digits_blob[:-cut])


def test_newer_version_says_what_to_do(digits_blob):
    newer = bytearray(digits_blob)
    newer[4] = blob.VERSION + 1
    with pytest.raises(BlobFormatError, match="update npu-sdk"):
        blob.unpack(newer)


def _describe(c):
    """The shape of a construct schema: classes, field names, formats, constants, nesting."""
    inner = [_describe(s) for s in getattr(c, "subcons", [])]
    if hasattr(c, "subcon"):
        inner.append(_describe(c.subcon))
    value = getattr(c, "value", None)
    return (type(c).__name__, getattr(c, "name", None), getattr(c, "fmtstr", None),
            value if isinstance(value, (bytes, int)) else None,
            sorted(getattr(c, "encmapping", {}).items()), inner)


def schema_fingerprint():
    import json
    text = json.dumps([_describe(blob.Blob), sorted(blob.OPCODES.items()),
                       sorted((k, list(v)) for k, v in blob.PARAMS.items()), blob.ALIGN, blob.MAX_RANK],
                      default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


#: The schema each released format version was. A change to blob.py's schema, opcodes or
#: parameters must come with a new VERSION (and the firmware's blobfmt.VERSION) and a new line here.
SCHEMAS = {0: "15b84e92cad9aa1a7c30bee1f258fdddb69783655ac957e5b2ba4c01e5aa7f06",
           1: "88251ca8147f98a41f74b1a99218f29e30ca139ae56763648d67c8e0ef025a06",  # int64, 16x8 kernels
           2: "b71ef5c05d4623966273731619de7f14acb9cf4655757d73991dc3334d724b6d"}  # 16x8 elementwise, softmax, mean


def test_schema_changes_come_with_a_version_bump():
    assert SCHEMAS.get(blob.VERSION) == schema_fingerprint(), (
        "the blob schema changed but blob.VERSION is still %d: bump blob.VERSION and "
        "firmware/npufw/blobfmt.VERSION, regenerate tests/vectors with tools/make_vectors.py "
        "and add the new fingerprint to SCHEMAS" % blob.VERSION)
