"""The link over an Arm CMSDK APB UART read at its registers (the qemu boards' UART0).

MicroPython's qemu port reads that UART by polling, one byte per stdin call; reading a frame
through sys.stdin that way costs tens of microseconds a byte under QEMU (about 10 KB/s, a
tenth of a 921,600-baud line). A viper loop on the registers takes bytes as fast as they
come and hands the server a chunk once the line goes quiet. Nothing else reads this UART
while the server runs (the port has no UART interrupt or ring buffer), and writes still go
through stdout.
"""
import sys

import micropython
import uctypes

CHUNK = 1024
QUIET = 20000  # empty polls (a few ms under QEMU) before a partial chunk is handed on


@micropython.viper
def _take(regs: ptr32, buf: ptr8, size: int, quiet: int) -> int:
    """Bytes read into buf: at least one (waits for it), then until size or `quiet` empty polls."""
    got = 0
    idle = 0
    while got < size:
        if regs[1] & 2:  # STATE.RXFULL: DATA holds a received byte
            buf[got] = regs[0]
            got += 1
            idle = 0
        elif got:
            idle += 1
            if idle > quiet:
                break
    return got


class CmsdkUart:
    def __init__(self, base):
        self.regs = uctypes.bytearray_at(base, 8)  # DATA, STATE
        self.buf = bytearray(CHUNK)
        self.view = memoryview(self.buf)
        self.tx = sys.stdout.buffer

    def read(self):
        # a view on the one buffer, not a copy: the server feeds it to its deframer (which
        # copies what it keeps) before it reads again, and nothing is allocated per chunk
        return self.view[:_take(self.regs, self.buf, CHUNK, QUIET)]

    def any(self):
        """Whether a received byte waits (STATE.RXFULL; a RUN looks between inferences)."""
        return bool(self.regs[4] & 2)

    def write(self, data):
        self.tx.write(data)
