"""The link over MicroPython's stdin/stdout: the USB/REPL UART on a board, pipes in the emulator."""
import select
import sys


class StdioUart:
    def __init__(self, chunk):
        # chunk > 1 only where stdin is non-blocking (the emulator): a board's stdin.read(n) waits for n.
        self.rx = sys.stdin.buffer
        self.tx = sys.stdout.buffer
        self.chunk = chunk
        self.poller = select.poll()
        self.poller.register(self.rx, select.POLLIN)

    def read(self):
        while True:
            self.poller.poll()
            data = self.rx.read(self.chunk)
            if data is None:  # woke without data
                continue
            if not data:
                return None
            if self.chunk == 1:
                data = bytearray(data)
                while self.poller.poll(0) and len(data) < 512:
                    data.extend(self.rx.read(1))
            return data

    def write(self, data):
        self.tx.write(data)
        if hasattr(self.tx, "flush"):
            self.tx.flush()
