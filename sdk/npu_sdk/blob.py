"""THE .npb blob format: the construct schema below is the specification.

Layout (little-endian throughout):

    header      magic "NPUB", format version, counts, arena size, constant region
    header_crc  CRC-32 of the header bytes, so counts are trusted only when intact
    tensors     one fixed-size record per tensor: dtype, where it lives, shape, quantization
    inputs      tensor indices of the model inputs
    outputs     tensor indices of the model outputs
    ops         one record per op: opcode, tensor indices, int32 kernel parameters
    padding     zeros up to a 16-byte boundary
    constants   weights, biases, multipliers; each constant 16-byte aligned
    sha256      SHA-256 of every byte before it

docs/blob-format.md describes it; firmware/npufw/blobfmt.py reads it with
`struct` and is proven equal by the golden vectors in tests/.
"""
import binascii
import hashlib

from construct import (Array, Bytes, Checksum, Const, ConstructError, Enum, Float32l, Int8ul,
                       Int16sl, Int16ul, Int32sl, Int32ul, Padding, RawCopy, Rebuild, Struct,
                       Terminated, len_, this)

from . import ops
from .errors import BlobFormatError

MAGIC = b"NPUB"
VERSION = 2
ALIGN = 16
MAX_RANK = 4

#: Opcodes and kernel parameter names (in blob order) of the blob: the registry's kernels.
OPCODES = {k.name: k.opcode for k in ops.KERNELS}
OPNAMES = {v: k for k, v in OPCODES.items()}
KERNELS = {k.opcode: k for k in ops.KERNELS}
PARAMS = {k.name: k.params for k in ops.KERNELS}

DType = Enum(Int8ul, int8=0, int32=1, float32=2, int16=3, uint8=4, int64=5)
Location = Enum(Int8ul, arena=0, const=1)

Header = Struct(
    "magic" / Const(MAGIC),
    "version" / Int16ul,
    "n_tensors" / Rebuild(Int16ul, len_(this._.tensors)),
    "n_ops" / Rebuild(Int16ul, len_(this._.ops)),
    "n_inputs" / Rebuild(Int8ul, len_(this._.inputs)),
    "n_outputs" / Rebuild(Int8ul, len_(this._.outputs)),
    "arena_size" / Int32ul,
    "const_size" / Rebuild(Int32ul, len_(this._.constants)),
)

TensorRecord = Struct(
    "dtype" / DType,
    "location" / Location,
    "ndim" / Int8ul,
    Padding(1),
    "shape" / Array(MAX_RANK, Int32ul),  # the first ndim entries count
    "scale" / Float32l,
    "zero_point" / Int32sl,
    "offset" / Int32ul,  # into the arena or the constant region
    "size" / Int32ul,  # bytes
)

OpRecord = Struct(
    "opcode" / Int8ul,
    "n_inputs" / Rebuild(Int8ul, len_(this.inputs)),
    "n_outputs" / Rebuild(Int8ul, len_(this.outputs)),
    "n_params" / Rebuild(Int8ul, len_(this.params)),
    "inputs" / Array(this.n_inputs, Int16sl),  # -1: optional input absent
    "outputs" / Array(this.n_outputs, Int16ul),
    "params" / Array(this.n_params, Int32sl),
)

Body = Struct(
    "header" / RawCopy(Header),
    "header_crc" / Checksum(Int32ul, lambda data: binascii.crc32(data), this.header.data),
    "tensors" / Array(this.header.value.n_tensors, TensorRecord),
    "inputs" / Array(this.header.value.n_inputs, Int16ul),
    "outputs" / Array(this.header.value.n_outputs, Int16ul),
    "ops" / Array(this.header.value.n_ops, OpRecord),
    Padding(lambda ctx: -ctx._io.tell() % ALIGN),  # constants start 16-byte aligned
    "constants" / Bytes(this.header.value.const_size),
)

Blob = Struct("body" / RawCopy(Body), "sha256" / Bytes(32), Terminated)


def pack(arena_size, tensors, inputs, outputs, ops, constants):
    """Build blob bytes. `tensors` and `ops` are lists of dicts with the record fields."""
    try:
        raw = Body.build(dict(header=dict(value=dict(version=VERSION, arena_size=arena_size)),
                              header_crc=None, tensors=tensors, inputs=inputs, outputs=outputs,
                              ops=ops, constants=bytes(constants)))
    except ConstructError as e:  # a count, size or parameter outside its field
        raise BlobFormatError("the model does not fit blob format %d: %s"
                              % (VERSION, " ".join(str(e).split()))) from e
    return raw + hashlib.sha256(raw).digest()


def verify(data):
    """Check magic, version, header CRC, size and SHA-256; raise BlobFormatError naming the fault."""
    data = bytes(data)
    if len(data) < Header.sizeof() + 4 + 32 or data[:4] != MAGIC:
        raise BlobFormatError("not an .npb blob (no 'NPUB' magic); compile the model with `npu compile`")
    version = int.from_bytes(data[4:6], "little")
    if version != VERSION:
        raise BlobFormatError("blob format version %d; this SDK reads version %d: recompile the model "
                              "with this SDK or update npu-sdk" % (version, VERSION))
    if hashlib.sha256(data[:-32]).digest() != data[-32:]:
        raise BlobFormatError("blob SHA-256 mismatch: the file is damaged or truncated; recompile it")
    _check_declared_sizes(data)


def _check_declared_sizes(data):
    """Refuse a header whose counts need more bytes than the blob has, before any of them
    sizes a read or an allocation (the header CRC is checked first)."""
    head = data[:Header.sizeof()]
    if binascii.crc32(head) != int.from_bytes(data[len(head):len(head) + 4], "little"):
        raise BlobFormatError("blob header CRC mismatch: the file is damaged; recompile it")
    h = Header.parse(head)
    least = (len(head) + 4 + h.n_tensors * TensorRecord.sizeof() + 2 * (h.n_inputs + h.n_outputs)
             + 4 * h.n_ops + h.const_size + 32)
    if least > len(data):
        raise BlobFormatError("blob header declares %d tensors, %d ops and %d constant bytes, which "
                              "need at least %d bytes; the blob has %d: it is damaged, recompile it"
                              % (h.n_tensors, h.n_ops, h.const_size, least, len(data)))
    if h.n_tensors > ops.MAX_TENSORS:  # op records index tensors with int16
        raise BlobFormatError("blob declares %d tensors, at most %d are supported: it is damaged, "
                              "recompile it" % (h.n_tensors, ops.MAX_TENSORS))


def unpack(data):
    """Verify then parse a blob into a construct Container (body fields + sha256)."""
    verify(data)
    try:
        parsed = Blob.parse(bytes(data))
    except ConstructError as e:
        raise BlobFormatError("malformed blob: %s" % (str(e).splitlines()[0],)) from e
    body = parsed.body.value
    body.sha256 = parsed.sha256
    _check_tables(body)
    return body


_ITEM = {"int8": 1, "int32": 4, "float32": 4, "int16": 2, "uint8": 1, "int64": 8}


def _check_tables(body):
    """Refuse what the checksums cannot: tables whose indices, shapes and sizes do not hold
    together (a blob edited and resealed), before any reader of the tables trusts them."""
    n = len(body.tensors)
    regions = {"arena": body.header.value.arena_size, "const": len(body.constants)}

    def bad(what):
        raise BlobFormatError("malformed blob: %s; recompile the model with `npu compile`" % what)
    for i, t in enumerate(body.tensors):
        shape = list(t.shape[:t.ndim])
        if str(t.dtype) not in _ITEM or str(t.location) not in regions:
            bad("tensor %d has dtype %s, location %s" % (i, t.dtype, t.location))
        if not 1 <= t.ndim <= MAX_RANK or min(shape) < 1:
            bad("tensor %d has shape %s" % (i, shape))
        count = 1
        for d in shape:
            count *= d
        if count * _ITEM[str(t.dtype)] != t.size or t.offset + t.size > regions[str(t.location)]:
            bad("tensor %d's size or offset does not fit its shape and region" % i)
    for i in list(body.inputs) + list(body.outputs):
        if i >= n or str(body.tensors[i].location) != "arena":
            bad("model input or output %d is not an arena tensor" % i)
    for k, op in enumerate(body.ops):
        if op.opcode not in OPNAMES or len(op.inputs) != KERNELS[op.opcode].inputs \
                or len(op.params) != len(KERNELS[op.opcode].params) or len(op.outputs) != 1:
            bad("op %d: unknown opcode %d or wrong arity" % (k, op.opcode))
        for i in list(op.inputs) + list(op.outputs):
            if not -1 <= i < n or (i == -1 and i in op.outputs):
                bad("op %d: tensor index %d out of range" % (k, i))
