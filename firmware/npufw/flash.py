"""Model store on memory-mapped flash: each blob lies whole in one extent, read in place.

A board whose flash is in its address space (the qemu board; XIP flash on a Cortex-M) keeps
models here rather than in a filesystem, so the interpreter takes the constants as memoryview
slices of the flash and copies no weight into the heap. The interface is store.Store's.

Layout of the region: two directory slots of _SLOT bytes, then extents (_ALIGN-aligned). A
directory is magic, sequence number, entries, CRC-32; the valid slot with the higher sequence
number is the directory. Every change (commit, rollback, confirm, remove, key) is one write
of the other slot, so a power cut leaves the old directory or the new one, whole: the file
store's renames become one atomic step. Blob bytes go to a free extent before the directory
names them. An entry is (name, kind, offset, length, extent size, meta):
  kind NPB: an installed model; OLD: its previous version until the new one loads;
  PART: a transfer in progress, length = bytes written and flushed, meta = the sidecar that
  resume() compares (the server's size and blob id); KEY: the device key, in meta; VER: the
  version of the model last installed signed (u32 in meta), which outlives its removal;
  LOCK: the board never hands its REPL over (KEY with LOCK), which outlives the key.
"""
import binascii
import struct

_SLOT = 4096
_ALIGN = 256
_MAGIC = b"NPUD"
_HEAD = "<4sIH"  # magic, sequence, entry count
_ENTRY = "<BIII"  # kind, offset, length, extent size (after the name, before the meta)
NPB = 0
OLD = 1
PART = 2
KEY = 3
VER = 4
LOCK = 5
_KEY_NAME = "device.key"
_LOCK_NAME = "device.lock"
# a part's length reaches the directory at most every _SYNC bytes: resume after a power cut
# restarts from there, and a transfer costs one directory write per _SYNC bytes, not per chunk
_SYNC = 16384


def _up(n):
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


class _Part:
    """A transfer being written into its extent."""

    def __init__(self, store, name, entry):
        self.store = store
        self.name = name
        self.entry = entry  # [kind, offset, length, meta, capacity]
        self.synced = entry[2]

    def write(self, data):
        e = self.entry
        if e[2] + len(data) > e[4]:
            raise OSError("write past the end of the transfer's extent")
        self.store.region[e[1] + e[2]:e[1] + e[2] + len(data)] = data
        e[2] += len(data)
        self.store._wrote("write %s.part" % self.name)
        if e[2] - self.synced >= _SYNC or e[2] == e[4]:
            self.synced = e[2]
            self.store._save()

    def close(self):
        if self.synced != self.entry[2]:
            self.synced = self.entry[2]
            self.store._save()


class FlashStore:
    def __init__(self, region, on_write=None):
        """region: a writable buffer over the flash (uctypes.bytearray_at on a board)."""
        self.region = region
        self.capacity = len(region) - 2 * _SLOT
        self.on_write = on_write
        self.entries = {}  # (name, kind) -> [kind, offset, length, meta, capacity]
        self.seq, self.slot = 0, 1
        for slot in (0, 1):
            found = self._read_slot(slot)
            if found is not None and (self.seq == 0 or found[0] > self.seq):
                self.seq, self.slot, self.entries = found[0], slot, found[1]

    # --- the directory -----------------------------------------------------------

    def _read_slot(self, slot):
        base = slot * _SLOT
        r = self.region
        magic, seq, count = struct.unpack_from(_HEAD, r, base)
        if magic != _MAGIC:
            return None
        pos, entries = base + 10, {}
        try:
            for _ in range(count):
                n = r[pos]
                name = bytes(r[pos + 1:pos + 1 + n]).decode()
                kind, offset, length, extent = struct.unpack_from(_ENTRY, r, pos + 1 + n)
                pos += 14 + n
                m = r[pos]
                meta = bytes(r[pos + 1:pos + 1 + m])
                pos += 1 + m
                entries[(name, kind)] = [kind, offset, length, meta, extent]
            crc = struct.unpack_from("<I", r, pos)[0]
        except (IndexError, ValueError, UnicodeError):
            return None
        if pos + 4 > base + _SLOT or crc != binascii.crc32(bytes(r[base:pos])) & 0xFFFFFFFF:
            return None
        return seq, entries

    def _save(self):
        out = bytearray(struct.pack(_HEAD, _MAGIC, self.seq + 1, len(self.entries)))
        for (name, kind), e in self.entries.items():
            b = name.encode()
            out += bytes((len(b),)) + b + struct.pack(_ENTRY, kind, e[1], e[2], e[4])
            out += bytes((len(e[3]),)) + e[3]
        out += struct.pack("<I", binascii.crc32(out) & 0xFFFFFFFF)
        if len(out) > _SLOT:
            raise OSError("flash directory full: remove a model (npu rm NAME)")
        slot = 1 - self.slot
        self.region[slot * _SLOT:slot * _SLOT + len(out)] = out
        self.seq, self.slot = self.seq + 1, slot
        self._wrote("directory %d" % self.seq)

    def _wrote(self, what):
        if self.on_write is not None:
            self.on_write(what)

    def _allocate(self, size):
        """The offset of a free extent of `size` bytes (first fit), or None."""
        used = sorted((e[1], e[1] + e[4]) for e in self.entries.values() if e[0] < KEY)
        at = 2 * _SLOT
        for start, end in used:
            if start - at >= size:
                return at
            at = max(at, end)
        return at if len(self.region) - at >= size else None

    # --- store.Store's interface -------------------------------------------------

    def recover(self):
        """Nothing to finish: every change is one directory write."""

    def path(self, name, ext=".npb"):
        return name + ext  # for messages only: nothing here is a file

    def names(self):
        return sorted(n for (n, k) in self.entries if k == NPB)

    def size(self, name):
        return self.entries[(name, NPB)][2]

    def used(self):
        return sum(e[4] for e in self.entries.values() if e[0] < KEY)  # extents: not KEY, VER

    def free(self, reclaimable=False):
        used = self.used()
        if reclaimable:
            used -= sum(e[4] for e in self.entries.values() if e[0] == PART)
        return max(0, self.capacity - used)

    def mapped(self, name, ext=".npb"):
        """The stored blob (ext ".part": the transfer) as a view of the flash: no copy."""
        e = self.entries[(name, PART if ext == ".part" else NPB)]
        return memoryview(self.region)[e[1]:e[1] + e[2]]

    def read(self, name):
        return bytes(self.mapped(name))

    def tail(self, name, n, ext=".npb"):
        return bytes(self.mapped(name, ext)[-n:])

    def begin(self, name, meta=None, size=0):
        """Reserve an extent for a new transfer of `size` bytes (`meta` kept for resume())."""
        self.discard(name)
        offset = self._allocate(_up(size))
        if offset is None:
            raise OSError("no free extent of %d bytes (%d free in all): remove a model "
                          "(npu rm NAME)" % (size, self.free()))
        e = self.entries[(name, PART)] = [PART, offset, 0, meta or b"", _up(size)]
        self._save()
        return _Part(self, name, e)

    def resume(self, name, meta):
        e = self.entries.get((name, PART))
        if e is None or e[3] != meta:
            return None
        return _Part(self, name, e), e[2]

    def commit(self, name):
        """The verified transfer becomes the model; an installed one that has loaded is kept
        as the previous version (OLD) until confirm(), as store.Store does."""
        e = self.entries.pop((name, PART))
        e[0], e[3] = NPB, b""
        old = self.entries.pop((name, NPB), None)
        if old is not None and (name, OLD) not in self.entries:
            old[0] = OLD
            self.entries[(name, OLD)] = old
        self.entries[(name, NPB)] = e
        self._save()

    def unconfirmed(self, name):
        return (name, OLD) in self.entries

    def confirm(self, name):
        if self.entries.pop((name, OLD), None) is not None:
            self._save()

    def rollback(self, name):
        old = self.entries.pop((name, OLD), None)
        if old is None:
            return False
        old[0] = NPB
        self.entries[(name, NPB)] = old
        self._save()
        return True

    def discard(self, name):
        if self.entries.pop((name, PART), None) is not None:
            self._save()

    def remove(self, name):
        found = False
        for kind in (NPB, OLD, PART):
            if self.entries.pop((name, kind), None) is not None:
                found = True
        if found:
            self._save()
        return found

    def partials(self):
        return sorted(n for (n, k) in self.entries if k == PART)

    def version(self, name):
        e = self.entries.get((name, VER))
        return -1 if e is None else struct.unpack("<I", e[3])[0]

    def set_version(self, name, version):
        self.entries[(name, VER)] = [VER, 0, 0, struct.pack("<I", version), 0]
        self._save()

    def key(self):
        e = self.entries.get((_KEY_NAME, KEY))
        return None if e is None else e[3]

    def set_key(self, key):
        if key is None:
            if self.entries.pop((_KEY_NAME, KEY), None) is not None:
                self._save()
            return
        self.entries[(_KEY_NAME, KEY)] = [KEY, 0, 0, bytes(key), 0]
        self._save()

    def locked(self):
        return (_LOCK_NAME, LOCK) in self.entries

    def lock(self):
        if not self.locked():
            self.entries[(_LOCK_NAME, LOCK)] = [LOCK, 0, 0, b"", 0]
            self._save()
