"""Start a virtual board: print `port: PATH`, serve until stopped."""
import argparse
import signal
import sys
import tempfile
import threading

from . import cores, profiles
from .uart import VirtualUart


def add_arguments(p):
    p.add_argument("--core", choices=("cpython", "micropython"), default="cpython",
                   help="cpython: firmware package + C kernels (fast); micropython: the real "
                        "MicroPython VM running firmware/ with viper kernels")
    p.add_argument("--board", default="host", help="board profile: %s" % ", ".join(profiles.PROFILES))
    p.add_argument("--flash-dir", help="directory that holds the board's flash (persists across "
                                       "restarts); default: a fresh temporary one")


def serve(args):
    profile = profiles.get(args.board)
    tmp = None
    flash_dir = args.flash_dir
    if flash_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="npu-flash-")
        flash_dir = tmp.name
    uart = VirtualUart()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    proc = None
    if args.core == "micropython":
        proc = cores.start_micropython(uart, profile, flash_dir)
    else:
        cores.start_cpython(uart, profile, flash_dir)
    print("port: %s" % uart.port, flush=True)
    print("core: %s, board: %s, flash: %s" % (args.core, profile["name"], flash_dir), flush=True)
    try:
        while not stop.wait(0.2):
            if proc is not None and proc.poll() is not None:
                print("npu emulate: the MicroPython core exited with code %d" % proc.returncode,
                      file=sys.stderr)
                return 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if tmp is not None:
            tmp.cleanup()
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m npu_emulator", description=__doc__)
    add_arguments(p)
    return serve(p.parse_args(argv))
