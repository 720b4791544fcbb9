"""`npu emulate --core micropython --repl`: the MicroPython VM's own REPL on the virtual UART,
as a board shows it on its USB serial port before our firmware is installed.

The unix port runs its REPL (friendly, raw and raw-paste modes: what mpremote and
`npu firmware install` speak) only when stdin is a terminal; given pipes it reads a
script from them. So the VM gets a pseudo-terminal of its own, and a relay thread sits
between it and the VirtualUart (--baud, --faults and --listen still apply). The VM's
working directory is the board's filesystem (--flash-dir, or a temporary directory):
files copied to relative paths over the REPL land there.

Soft reset: where a board soft-resets (Ctrl-D at the friendly prompt or at an empty raw
REPL command, sys.exit()), the unix port ends the process. The relay then starts a
fresh VM and prints what a board prints: "MPY: soft reboot", then the banner and
">>> " or, if the host was in the raw REPL, only "raw REPL; CTRL-B to exit" and ">"
(it re-enters the raw REPL for the host and hides the new VM's banner).
Unlike a board, the REPL board never runs main.py at start-up (our firmware would take
the port for the npu link); `--core micropython` without --repl runs the firmware.
Ctrl-C does not interrupt code that is running (the VM gets no SIGINT).
"""
import os
import select
import subprocess
import threading
import tty

from .cores import micropython_executable

_RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
_SOFT_REBOOT = b"MPY: soft reboot\r\n"
_ENTER_RAW, _EXIT_RAW = 0x01, 0x02


class ReplBoard:
    """The relay and the VM it restarts. Looks like a Popen to the emulator's main loop:
    poll() is None while it serves; kill() and wait() stop it."""

    def __init__(self, uart, profile, root):
        self.argv = [micropython_executable(), "-X", "heapsize=%d" % profile["ram"]]
        self.root = str(root)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        host_r, host_w = os.pipe()  # host -> relay
        board_r, board_w = os.pipe()  # relay -> host
        self.from_host, self.to_host = host_r, board_w
        self.raw = False  # the host's last mode switch: Ctrl-A enters the raw REPL, Ctrl-B leaves
        self.hide_until = None  # drop VM output up to this marker (the banner after a raw reboot)
        self.hidden = b""
        self.spawn_lock = threading.Lock()
        self.stopped = threading.Event()
        self.returncode = None
        self.vm = self._spawn()
        uart.connect(host_w, board_r)
        for target in (self._relay_input, self._relay_output):
            threading.Thread(target=target, daemon=True).start()

    def _spawn(self):
        return subprocess.Popen(self.argv, stdin=self.slave, stdout=self.slave, stderr=self.slave,
                                cwd=self.root, close_fds=True)

    def _write_vm(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view):]

    def _relay_input(self):
        while not self.stopped.is_set():
            try:
                data = os.read(self.from_host, 65536)
            except OSError:
                return
            if not data:
                return
            last = max(data.rfind(bytes((_ENTER_RAW,))), data.rfind(bytes((_EXIT_RAW,))))
            if last >= 0:
                self.raw = data[last] == _ENTER_RAW
            try:
                self._write_vm(data)  # blocks while no VM reads: held in the pty across a reboot
            except OSError:
                return

    def _send(self, data):
        if self.hide_until is not None:
            self.hidden += data
            at = self.hidden.find(self.hide_until)
            if at < 0:
                self.hidden = self.hidden[-len(self.hide_until):]
                return
            data, self.hide_until, self.hidden = self.hidden[at:], None, b""
        view = memoryview(data)
        while view:
            view = view[os.write(self.to_host, view):]

    def _relay_output(self):
        """Forward the VM's output; once it has exited and all it wrote is forwarded, reboot."""
        try:
            while not self.stopped.is_set():
                if select.select([self.master], [], [], 0.05)[0]:
                    self._send(os.read(self.master, 65536))
                elif self.vm.poll() is not None and not self.stopped.is_set():
                    self._reboot()
        except OSError:
            return

    def _reboot(self):
        self._send(_SOFT_REBOOT)
        with self.spawn_lock:
            if self.stopped.is_set():
                return
            if self.raw:
                self.hide_until = _RAW_BANNER
                self._write_vm(bytes((_ENTER_RAW,)))  # waits in the pty for the new VM
            self.vm = self._spawn()

    def poll(self):
        return self.returncode

    def kill(self):
        with self.spawn_lock:  # no reboot after this
            self.stopped.set()
            if self.vm.poll() is None:
                self.vm.kill()
        self.returncode = -9

    def wait(self, timeout=None):
        self.vm.wait(timeout)
        return self.returncode
