"""Reads .npb blobs with struct; the spec is npu_sdk/blob.py (construct), golden vectors prove equality.

Everything a blob claims is checked here, before any kernel sees it: checksums,
counts, every tensor inside its region, every op's tensor indices and parameter count.
"""
import binascii
import hashlib
import struct

from . import opcodes

MAGIC = b"NPUB"
VERSION = 2
ALIGN = 16
_HEADER = "<4sHHHBBII"
_HEADER_SIZE = 20
_TENSOR = "<BBBx4IfiII"
_TENSOR_SIZE = 36

# dtype code -> item size; names as in blob.DType
DTYPE_SIZE = {0: 1, 1: 4, 2: 4, 3: 2, 4: 1, 5: 8}
ARENA = 0
CONST = 1

# opcode -> (name, number of tensor inputs, number of int32 params): the SDK's registry
OPS = opcodes.OPS


class BlobError(Exception):
    pass


class Tensor:
    __slots__ = ("dtype", "location", "shape", "scale", "zero_point", "offset", "size")


class Op:
    __slots__ = ("opcode", "inputs", "outputs", "params")


class Blob:
    __slots__ = ("arena_size", "tensors", "inputs", "outputs", "ops", "const_start", "const_size")


def check_header(data):
    """Check magic, version and header CRC; return the header fields."""
    if len(data) < _HEADER_SIZE + 4 + 32:
        raise BlobError("blob too short (%d bytes)" % len(data))
    head = struct.unpack_from(_HEADER, data, 0)
    if head[0] != MAGIC:
        raise BlobError("not an .npb blob (bad magic)")
    if head[1] != VERSION:
        raise BlobError("blob format version %d, firmware reads %d: recompile or update firmware"
                        % (head[1], VERSION))
    crc = struct.unpack_from("<I", data, _HEADER_SIZE)[0]
    if crc != binascii.crc32(bytes(data[:_HEADER_SIZE])) & 0xFFFFFFFF:
        raise BlobError("blob header CRC mismatch")
    return head


def sha256_ok(data):
    h = hashlib.sha256()
    n = len(data) - 32
    mv = memoryview(data)
    step = 4096
    for i in range(0, n, step):  # chunked: the board may hold the blob in a memoryview
        h.update(mv[i:min(i + step, n)])
    return h.digest() == bytes(mv[n:])


def parse(data, check_sha=True, total=None):
    """Parse and validate a whole blob held in `data` (bytes, bytearray or memoryview).

    With `total` (the whole blob's length), `data` may hold only the bytes before the
    constants (npufw/stream.py reads the tables of a stored blob so); the caller then
    checks the SHA-256 itself."""
    _, _, n_tensors, n_ops, n_in, n_out, arena_size, const_size = check_header(data)
    if total is None:
        total = len(data)
    # Counts are trusted (header CRC) but not yet believed: they must fit the blob.
    least = _HEADER_SIZE + 4 + n_tensors * _TENSOR_SIZE + 2 * (n_in + n_out) + 4 * n_ops + const_size + 32
    if least > total:
        raise BlobError("header declares %d tensors, %d ops, %d constant bytes: needs %d bytes, "
                        "blob has %d" % (n_tensors, n_ops, const_size, least, total))
    if n_tensors > opcodes.MAX_TENSORS:
        raise BlobError("blob has %d tensors, at most %d are supported" % (n_tensors, opcodes.MAX_TENSORS))
    if check_sha and not sha256_ok(data):
        raise BlobError("blob SHA-256 mismatch: damaged or truncated")
    b = Blob()
    b.arena_size = arena_size
    b.const_size = const_size
    pos = _HEADER_SIZE + 4
    end = min(total - 32, len(data))  # the tables must lie inside what `data` holds
    if pos + n_tensors * _TENSOR_SIZE > end:
        raise BlobError("tensor table runs past the end")
    b.tensors = []
    for i in range(n_tensors):
        dt, loc, ndim, s0, s1, s2, s3, scale, zp, off, size = struct.unpack_from(_TENSOR, data, pos)
        pos += _TENSOR_SIZE
        if dt not in DTYPE_SIZE or loc not in (ARENA, CONST) or not 0 < ndim <= 4:
            raise BlobError("tensor %d: bad dtype/location/rank" % i)
        t = Tensor()
        t.dtype, t.location, t.shape = dt, loc, (s0, s1, s2, s3)[:ndim]
        t.scale, t.zero_point, t.offset, t.size = scale, zp, off, size
        count = 1
        for d in t.shape:
            count *= d
        if count * DTYPE_SIZE[dt] != size:
            raise BlobError("tensor %d: size %d does not match its shape" % (i, size))
        if off + size > (arena_size if loc == ARENA else const_size):
            raise BlobError("tensor %d lies outside its region" % i)
        b.tensors.append(t)
    if pos + 2 * (n_in + n_out) > end:
        raise BlobError("io table runs past the end")
    b.inputs = list(struct.unpack_from("<%dH" % n_in, data, pos))
    pos += 2 * n_in
    b.outputs = list(struct.unpack_from("<%dH" % n_out, data, pos))
    pos += 2 * n_out
    for t in b.inputs + b.outputs:
        if t >= n_tensors or b.tensors[t].location != ARENA:
            raise BlobError("io tensor %d is not an arena tensor" % t)
    b.ops = []
    for i in range(n_ops):
        if pos + 4 > end:
            raise BlobError("op table runs past the end")
        opcode, ni, no, np_ = struct.unpack_from("<BBBB", data, pos)
        pos += 4
        if opcode not in OPS or OPS[opcode][1] != ni or OPS[opcode][2] != np_ or no != 1:
            raise BlobError("op %d: unknown opcode %d or wrong arity" % (i, opcode))
        if pos + 2 * (ni + no) + 4 * np_ > end:
            raise BlobError("op table runs past the end")
        op = Op()
        op.opcode = opcode
        op.inputs = struct.unpack_from("<%dh" % ni, data, pos)
        pos += 2 * ni
        op.outputs = struct.unpack_from("<%dH" % no, data, pos)
        pos += 2 * no
        op.params = struct.unpack_from("<%di" % np_, data, pos)
        pos += 4 * np_
        for t in op.inputs + op.outputs:
            if t >= n_tensors or t < -1:
                raise BlobError("op %d: tensor index %d out of range" % (i, t))
        if b.tensors[op.outputs[0]].location != ARENA:
            raise BlobError("op %d writes a constant" % i)
        b.ops.append(op)
    pos += -pos % ALIGN
    if pos + const_size != total - 32:
        raise BlobError("constant region size mismatch")
    b.const_start = pos
    return b
