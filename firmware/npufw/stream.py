"""Streaming weights: a stored blob read through its file, so its weights may exceed the RAM.

BlobFile(path) checks the header, the SHA-256 (4 KB at a time through one buffer) and
the tables, and keeps in RAM only the constants smaller than `threshold` (biases,
multipliers, shifts, LUTs), each in a small buffer of its own. The larger ones (weights) stay in
flash: interp.Model binds each op's large constants to slices of one scratch buffer,
sized for the op that needs the most, and reads them in (seek, readinto) before the op
runs. Nothing is allocated per inference. The RAM a streamed model takes is its arena
plus `ram` (scratch and resident constants); BlobFile allocates the arena too, with the
scratch, while the heap is in one piece (MicroPython's heap does not compact).

The file stays open while the model is loaded; close() releases it. The SHA-256 is
checked once, at load: the weights read later are trusted as flash is.
"""
import gc
import hashlib
import os

from . import blobfmt, checks
from .blobfmt import ALIGN, CONST, BlobError
from .pool import buffer

THRESHOLD = 1024  # constants of this many bytes or more stay in flash
_STEP = 4096


def wanted(blob_size, ram):
    """Stream a blob of `blob_size` bytes on a board with `ram` bytes? Yes when loading it
    whole would take more than half the RAM; in RAM is faster (no flash reads per op)."""
    return blob_size > ram // 2


def _align(n):
    return n + (-n % ALIGN)


def _check(f, size):
    """Check the header and the SHA-256 of the blob in file `f` (`size` bytes), 4 KB at a
    time through one buffer; return (arena_size, const_size)."""
    f.seek(0)
    arena_size, const_size = blobfmt.check_header(f.read(56))[6:8]
    if size < 56 + const_size:
        raise BlobError("header declares %d constant bytes, blob has %d" % (const_size, size))
    f.seek(0)
    mv = memoryview(bytearray(_STEP))
    h = hashlib.sha256()
    left = size - 32
    while left:
        n = f.readinto(mv[:min(_STEP, left)])
        if not n:
            raise BlobError("blob truncated")
        h.update(mv[:n])
        left -= n
    if h.digest() != f.read(32):
        raise BlobError("blob SHA-256 mismatch: damaged or truncated")
    return arena_size, const_size


def verify(store, name):
    """Check the finished transfer `name` in `store` whole as blobfmt.parse and
    checks.check do, without reading it into RAM; return its tables (a blobfmt.Blob)."""
    if hasattr(store, "mapped"):  # memory-mapped flash: parse it where it lies
        data = store.mapped(name, ".part")
        b = blobfmt.parse(data)
        checks.check(b, checks.reader(data, b))
        return b
    return verify_file(store.path(name, ".part"))


def verify_file(path):
    size = os.stat(path)[6]
    with open(path, "rb") as f:
        const_size = _check(f, size)[1]
        f.seek(0)
        b = blobfmt.parse(f.read(size - 32 - const_size), False, size)
        checks.check(b, checks.file_reader(f, b.const_start))
        return b


def plan(b, threshold=THRESHOLD):
    """How a streamed blob (its tables `b`) uses RAM: (the constants kept resident, their
    bytes, the weight buffer's bytes: the most any one op streams)."""
    resident = [i for i, t in enumerate(b.tensors) if t.location == CONST and t.size < threshold]
    total = sum(_align(b.tensors[i].size) for i in resident)
    most = 0
    for op in b.ops:
        most = max(most, sum(_align(b.tensors[i].size) for i in streamed(b, op, resident)))
    return resident, total, most


def streamed(b, op, resident):
    """The op's constant inputs that stay in flash, each once."""
    out = []
    for i in op.inputs:
        if i >= 0 and i not in out and b.tensors[i].location == CONST and i not in resident:
            out.append(i)
    return out


def pool_need(b, size, pool, mapped=False):
    """Bytes of a `pool`-byte model pool (npufw/pool.py) that a blob of `size` bytes (its
    tables `b`) takes when loaded as load() does: its arena; on memory-mapped flash nothing
    more, else the whole blob when it is read into RAM, or its resident constants and weight
    buffer when it streams. The SDK's fit check (npu inspect --board) asks this too."""
    if mapped:
        return b.arena_size
    if not wanted(size, pool):
        return _align(size) + b.arena_size
    return b.arena_size + sum(plan(b)[1:])


class BlobFile:
    def __init__(self, path, threshold=THRESHOLD, pool=None, ram=0):
        self.f = open(path, "rb")
        try:
            self._load(os.stat(path)[6], threshold, pool, ram)
        except BaseException:
            self.f.close()
            raise

    def _load(self, size, threshold, pool, ram):
        f = self.f
        arena_size, const_size = _check(f, size)
        self.threshold = threshold
        self.size = size
        # Parse once to check it and size the buffers, drop it all, allocate the large
        # buffers while the heap is in one piece (MicroPython's heap does not compact),
        # then parse for good. Nothing large is allocated before the checks.
        b = self._parse(size - 32 - const_size)
        checks.check(b, checks.file_reader(f, b.const_start), ram)
        resident, most = self._plan(b)
        if ram and arena_size + resident + most > ram:
            raise MemoryError("arena and weight buffers need %d bytes, board has %d"
                              % (arena_size + resident + most, ram))
        b = None
        self.blob = self.where = None
        gc.collect()
        self.arena = buffer(pool, arena_size, "the arena")
        self.scratch = buffer(pool, most, "the weight buffer")
        self.ram = resident + most
        b = self._parse(size - 32 - const_size)
        self._plan(b)
        for i in self.where:  # small buffers of their own: they fit the heap's holes
            t = b.tensors[i]
            self.where[i] = buf = buffer(pool, t.size, "a resident constant")
            f.seek(b.const_start + t.offset)
            if f.readinto(buf) != t.size:
                raise BlobError("blob truncated")

    def _parse(self, const_start):
        self.f.seek(0)
        self.blob = blobfmt.parse(self.f.read(const_start), False, self.size)
        return self.blob

    def _plan(self, b):
        """Pick the constants kept in RAM; (their bytes, the scratch size)."""
        resident, total, most = plan(b, self.threshold)
        self.where = {i: None for i in resident}  # tensor index -> its bytes in RAM (after _load)
        return total, most

    def _streamed(self, op):
        return streamed(self.blob, op, self.where)

    def views(self, arena):
        """One view per tensor: arena tensors in `arena`, small constants resident, the
        streamed ones None until bind()."""
        out = []
        for i, t in enumerate(self.blob.tensors):
            if t.location != CONST:
                out.append(arena[t.offset:t.offset + t.size])
            elif i in self.where:
                out.append(memoryview(self.where[i]))
            else:
                out.append(None)
        return out

    def bind(self, op, views):
        """Point `views` at scratch slices for the op's streamed constants; return the
        op's loads: [(file offset, scratch view)], empty when it streams nothing."""
        sv = memoryview(self.scratch)
        loads = []
        at = 0
        for i in self._streamed(op):
            t = self.blob.tensors[i]
            views[i] = sv[at:at + t.size]
            loads.append((self.blob.const_start + t.offset, views[i]))
            at += _align(t.size)
        return loads

    def close(self):
        self.f.close()


def load(store, name, npu, ram, pool=None):
    """The interp.Model of stored model `name`: on memory-mapped flash its constants are
    used where they lie; from a file, read whole into RAM when it fits (see wanted()), else
    streamed through a BlobFile. Its buffers come from `pool` (npufw/pool.py) if given."""
    from .interp import Model
    if hasattr(store, "mapped"):
        return Model(store.mapped(name), npu, ram, pool)
    path = store.path(name)
    size = os.stat(path)[6]
    if not wanted(size, ram):
        data = buffer(pool, size, "the blob")
        with open(path, "rb") as f:
            if f.readinto(data) != size:
                raise BlobError("blob truncated")
        return Model(data, npu, ram, pool)
    source = BlobFile(path, pool=pool, ram=ram)
    try:
        return Model(source, npu, ram, pool)
    except BaseException:
        source.close()
        raise
