"""The link over MicroPython's stdin/stdout: the USB/REPL UART on a board, pipes in the emulator."""
import select
import sys


class StdioUart:
    def __init__(self, chunk):
        # chunk > 1 only where stdin is non-blocking (the emulator): a board's stdin.read(n) waits for n.
        self.rx = sys.stdin.buffer
        self.tx = sys.stdout.buffer
        self.chunk = chunk
        # what read() returns is a view on this one buffer, not a new object per chunk: the
        # server feeds it to its deframer (which copies what it keeps) before reading again,
        # and the heap does not move with how the line's bytes fell into chunks
        self.buf = bytearray(max(chunk, 512))
        self.view = memoryview(self.buf)
        self.poller = select.poll()
        self.poller.register(self.rx, select.POLLIN)

    def read(self):
        while True:
            self.poller.poll()
            if self.chunk > 1:
                n = self.rx.readinto(self.buf)
                if n is None:  # woke without data
                    continue
                return self.view[:n] if n else None
            data = self.rx.read(1)
            if not data:
                return None
            self.buf[0] = data[0]
            n = 1
            while n < 512 and self.poller.poll(0):
                self.buf[n] = self.rx.read(1)[0]
                n += 1
            return self.view[:n]

    def any(self):
        """Whether bytes wait to be read (a RUN looks between inferences)."""
        return bool(self.poller.poll(0))

    def write(self, data):
        self.tx.write(data)
        if hasattr(self.tx, "flush"):
            self.tx.flush()
