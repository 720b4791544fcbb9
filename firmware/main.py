"""Board entry point: build the board, serve the link.

On a MicroPython board this is /main.py: the link is the REPL UART, models live
in /models. The emulator's MicroPython core runs this same file on the unix
port with: main.py FLASH_DIR RAM_BYTES FLASH_BYTES BOARD_NAME.
"""
import sys
import time

from npufw import kernels
from npufw.board import Board
from npufw.server import Server
from npufw.stdio import StdioUart
from npufw.store import Store


def build(argv):
    if sys.platform == "linux":  # the emulator's MicroPython core
        root, ram, flash, name = argv[1], int(argv[2]), int(argv[3]), argv[4]
        uart = StdioUart(4096)
    else:
        import gc
        import os

        import micropython
        micropython.kbd_intr(-1)  # raw bytes on the REPL UART must not raise KeyboardInterrupt
        fs = os.statvfs("/")
        root, ram, flash, name = "/models", gc.mem_free(), fs[0] * fs[3], sys.platform
        uart = StdioUart(1)
    limits = {"ram": ram, "flash": flash, "board": name}
    return Board(uart, Store(root, flash), time, kernels, limits, "viper")


if __name__ == "__main__":
    Server(build(sys.argv)).serve_forever()
