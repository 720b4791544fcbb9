"""Power cuts: end the board at a chosen flash write, as if its supply went away.

The store calls a write hook after every flash write (firmware/npufw/store.py). On
the CPython core the hook below ends the whole emulator process; on the MicroPython
core firmware/main.py installs the same hook in the VM, which exits with the same
code. Files are as the last write left them: what survives is what a board would keep.
"""
import os
import sys

from npufw.board import POWER_CUT_EXIT as EXIT_CODE  # firmware/main.py's too


def message(what):
    return ("npu emulate: power cut after %s (--power-cut-after-writes); restart with the same "
            "--flash-dir to see what the board kept" % what)


def cut_after(writes):
    count = [0]

    def on_write(what):
        count[0] += 1
        if count[0] >= writes:
            sys.stderr.write(message("flash write %d (%s)" % (count[0], what)) + "\n")
            sys.stderr.flush()
            os._exit(EXIT_CODE)
    return on_write
