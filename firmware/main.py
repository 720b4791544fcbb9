"""Board entry point: build the board, serve the link.

On a MicroPython board this is /main.py: the link is the REPL UART, models live
in /models. The emulator's MicroPython core runs this same file on the unix
port with: main.py FLASH_DIR RAM_BYTES FLASH_BYTES BOARD_NAME [POWER_CUT_AFTER_WRITES];
with the last one > 0 the process exits with code 3 right after that many flash
writes, as if the power were cut (see npufw/store.py).

A REPL request (`npu repl`) ends the server loop: on a board, Ctrl-C is restored and
main.py returns, so MicroPython's REPL takes the UART (Ctrl-D soft-resets back into
this file). On the emulator's core the VM exits with code 4 and the emulator starts
a bare MicroPython REPL on the same UART; leaving it (Ctrl-D) restarts the firmware.
"""
import sys
import time

from npufw import kernels
from npufw.board import Board
from npufw.server import Server
from npufw.stdio import StdioUart
from npufw.store import Store


_POWER_CUT_EXIT = 3
_REPL_EXIT = 4


def _power_cut_after(writes):
    """A store write hook that ends the process after `writes` flash writes (emulator only)."""
    count = [0]

    def on_write(what):
        count[0] += 1
        if count[0] >= writes:
            sys.stderr.write("power cut after flash write %d (%s)\n" % (count[0], what))
            sys.exit(_POWER_CUT_EXIT)
    return on_write


def build(argv):
    on_write = None
    if sys.platform == "linux":  # the emulator's MicroPython core
        root, ram, flash, name = argv[1], int(argv[2]), int(argv[3]), argv[4]
        if len(argv) > 5 and int(argv[5]) > 0:
            on_write = _power_cut_after(int(argv[5]))
        uart = StdioUart(4096)
    else:
        import gc
        import os

        import micropython
        micropython.kbd_intr(-1)  # raw bytes on the REPL UART must not raise KeyboardInterrupt
        fs = os.statvfs("/")
        root, ram, flash, name = "/models", gc.mem_free(), fs[0] * fs[3], sys.platform
        uart = StdioUart(1)
    limits = {"ram": ram, "flash": flash, "board": name, "repl": True}
    return Board(uart, Store(root, flash, on_write), time, kernels, limits, "viper")


def main(argv):
    if Server(build(argv)).serve_forever() != "repl":
        return
    if sys.platform == "linux":
        sys.exit(_REPL_EXIT)
    import micropython
    micropython.kbd_intr(3)  # Ctrl-C interrupts again: the REPL is the user's
    print("npu firmware: REPL (Ctrl-D soft-resets back into the npu firmware)")


if __name__ == "__main__":
    main(sys.argv)
