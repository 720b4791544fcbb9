"""The model pool: one block of RAM taken at boot for what a model needs in bulk (its
arena, weight buffers, a blob read whole), handed out front to back and taken back whole
when the next model loads, as TFLite Micro's arena is.

Why: MicroPython's heap never moves an object. Big buffers allocated among a model's small
objects leave holes that the next model's buffers do not fit: on a 256 KB board with 180 KB
free, loading a model failed to allocate 55 KB. Taken once at boot, the pool is one piece.
"""

_ZERO = bytes(1024)


# Heap left outside the pool at least: 16 KB of early flash chunks (server.WINDOW), link
# frames and deflate's window (a few times server.MAX_PAYLOAD), the REPL.
RESERVE = 64 << 10


def size(ram, largest):
    """The pool of a board with `ram` bytes of heap whose largest free block at boot is
    `largest`: five eighths of its RAM, or less where the heap has less in one piece. The
    rest is the firmware's own (10 KB idle on the qemu board, code frozen in flash) and the
    loaded model's small objects: its tables while it loads (25 KB for a 30-op MobileNet),
    its tensor views and op calls. Measured on the qemu board: with three quarters, a
    MobileNet's load failed to find 1 KB in one piece outside the pool. The same on every
    core, so that the SDK's fit check (npu inspect --board) is the board's."""
    return max(0, min(ram * 5 // 8, largest - RESERVE))


class Pool:
    def __init__(self, size):
        self.mem = memoryview(bytearray(size))
        self.used = 0

    def __len__(self):
        return len(self.mem)

    def free(self):
        return len(self.mem) - self.used

    def reset(self):
        """Take everything back (the server drops the model that used it first)."""
        self.used = 0

    def take(self, n, what):
        """`n` zeroed bytes (a memoryview), 8-byte aligned; MemoryError naming `what`."""
        if self.used + n > len(self.mem):
            raise MemoryError("%s needs %d bytes, the model pool has %d of %d left"
                              % (what, n, self.free(), len(self.mem)))
        view = self.mem[self.used:self.used + n]
        self.used += (n + 7) & ~7
        z = memoryview(_ZERO)
        for at in range(0, n, 1024):
            k = min(1024, n - at)
            view[at:at + k] = z[:k]
        return view


def buffer(pool, n, what):
    """`n` zeroed bytes from `pool`, or a bytearray of the heap where there is no pool."""
    return bytearray(n) if pool is None else pool.take(n, what)
