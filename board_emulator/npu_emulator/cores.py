"""The cores a virtual board can run: the firmware package on CPython with the C kernels,
the real MicroPython VM on the firmware files with the viper kernels, or a real MicroPython
firmware image for an Arm Cortex-M board under qemu-system-arm (npu_sdk.firmware_image)."""
import os
import select
import socket
import subprocess
import threading
import time
from pathlib import Path

from npufw.board import Board
from npufw.server import Server
from npufw.store import Store

from . import _kernels, power


class _SocketUart:
    def __init__(self, sock):
        self.sock = sock

    def read(self):
        data = self.sock.recv(65536)
        return data or None

    def any(self):
        return bool(select.select([self.sock], [], [], 0)[0])

    def write(self, data):
        self.sock.sendall(data)


class _Clock:
    @staticmethod
    def ticks_us():
        return time.perf_counter_ns() // 1000

    @staticmethod
    def ticks_diff(a, b):
        return a - b


def start_cpython(uart, profile, flash_dir, power_cut_after=0):
    board_end, relay_end = socket.socketpair()
    limits = {"ram": profile["ram"], "flash": profile["flash"], "board": profile["name"]}
    on_write = power.cut_after(power_cut_after) if power_cut_after else None
    board = Board(_SocketUart(board_end), Store(str(flash_dir), profile["flash"], on_write), _Clock,
                  _kernels, limits, "c")
    uart.connect(relay_end.fileno(), relay_end.fileno())
    uart.keep = relay_end  # the relay uses its fd: the socket object must outlive this call
    t = threading.Thread(target=Server(board).serve_forever, daemon=True)
    t.start()
    return t


def micropython_executable():
    from npu_sdk import firmware_build
    return firmware_build.micropython_vm()


def _host_firmware():
    """The firmware built for the VM (cached): main.py and npufw/*.mpy, as on a board."""
    from npu_sdk import firmware_build
    return firmware_build.for_host_vm()


def _spawn(uart, args, first, cwd, firmware=True):
    rx_r, rx_w = os.pipe()
    tx_r, tx_w = os.pipe()
    # non-blocking lets the firmware read whatever has arrived (see npufw/stdio.py); the REPL
    # would take EAGAIN for the end of its input and exit
    os.set_blocking(rx_r, not firmware)
    proc = subprocess.Popen(args, stdin=rx_r, stdout=tx_w, stderr=None if first else tx_w,
                            cwd=str(cwd))
    os.close(rx_r)
    os.close(tx_w)
    if first:
        uart.connect(rx_w, tx_r)
    else:
        old = uart.board_rx
        uart.reattach(rx_w, tx_r)
        os.close(old)
    return proc


def start_micropython(uart, profile, flash_dir, power_cut_after=0, first=True):
    """The firmware on the MicroPython VM, compiled to .mpy as a board holds it (cached)."""
    root = _host_firmware()
    # The VM is 64-bit: its objects take twice a Cortex-M's bytes, so it gets twice the
    # profile's RAM; the firmware sizes its model pool from the profile's (npufw/pool.py).
    return _spawn(uart, [micropython_executable(), "-X", "heapsize=%d" % (2 * profile["ram"]),
                         str(root / "main.py"), str(flash_dir), str(profile["ram"]),
                         str(profile["flash"]), profile["name"], str(power_cut_after)],
                  first, root)


def start_repl(uart, profile):
    """The bare MicroPython REPL on the UART, as a board shows after main.py returns: in the
    firmware's folder, so `import npufw` works there as on a board."""
    # -i: the interactive REPL even though stdin is a pipe (else the VM runs stdin as a script)
    return _spawn(uart, [micropython_executable(), "-X", "heapsize=%d" % profile["ram"], "-i", "-c",
                         "print('npu emulate: MicroPython REPL; Ctrl-D restarts the npu firmware')"],
                  False, _host_firmware(), firmware=False)


def start_qemu(uart, profile, flash_dir, power_cut_after=0, icount=False, micropython=None,
               cmsis_nn=None, viper=False):
    """The profile's qemu target (default mps3-an547) with a heap of the profile's RAM, built
    or taken from the cache; the board's flash is FLASH_DIR/qemu-TARGET.flash."""
    from npu_sdk import firmware_image
    target = profile.get("qemu", firmware_image.DEFAULT_TARGET)
    elf = firmware_image.image(target, profile["ram"], micropython, cmsis_nn)
    Path(flash_dir).mkdir(parents=True, exist_ok=True)
    # absolute: QEMU runs in flash_dir, where a relative --flash-dir would not be found again
    flash = Path(flash_dir).resolve() / ("qemu-%s.flash" % target)
    firmware_image.write_config(flash, target, profile["flash"], profile["name"], power_cut_after,
                                icount, viper)
    return _spawn(uart, firmware_image.qemu_command(target, elf, flash, icount), True, flash_dir)
