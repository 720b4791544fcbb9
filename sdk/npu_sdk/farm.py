"""`npu farm up N`: N emulated boards on one machine, exported as a labgrid farm.

Each board is `npu emulate` on a pty; one ser2net publishes every pty as RFC 2217 on a
loopback TCP port; labgrid's exporter announces them to the coordinator as NetworkSerialPort
resources (group npu-K), and places npu-1..N match them. A coordinator is started too when
none answers at the address. Everything is stopped, and the places deleted, on close().
Real boards on other hosts join the same coordinator with labgrid's own exporter (docs/farm.md).
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from .errors import NpuError
from .places import Coordinator, coordinator_address

_START_TIMEOUT = 60.0  # a loaded 2-core CI machine starts grpc processes slowly


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(host, port):
    try:
        socket.create_connection((host, int(port)), timeout=1.0).close()
        return True
    except OSError:
        return False


def _tool(name):
    """A labgrid console script of this Python, else one on PATH."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    path = path if os.path.exists(path) else shutil.which(name)
    if path is None:
        raise NpuError("%s not found: pip install 'npu-sdk[farm]'" % name)
    return path


def ser2net_binary():
    path = shutil.which("ser2net") or ("/usr/sbin/ser2net" if os.path.exists("/usr/sbin/ser2net")
                                       else None)
    if path is None:
        raise NpuError("ser2net not found: apt-get install ser2net (Debian's package)")
    return path


def ser2net_config(boards):
    """ser2net 4 YAML: one RFC 2217 accepter on 127.0.0.1 per (pty, tcp port, baud)."""
    lines = []
    for i, (pty, port, baud) in enumerate(boards):
        lines += ["connection: &npu%d" % i,
                  "  accepter: telnet(rfc2217,mode=server),tcp,127.0.0.1,%d" % port,
                  "  connector: serialdev(nouucplock=true),%s,%dn81,local" % (pty, baud),
                  "  options:",
                  "    kickolduser: true",  # a client that vanished does not lock the board out
                  ""]
    return "\n".join(lines)


def exporter_config(groups):
    """labgrid exporter YAML: a NetworkSerialPort per group (already served by our ser2net)."""
    lines = []
    for group, port, baud in groups:
        lines += ["%s:" % group, "  NetworkSerialPort:", "    host: 127.0.0.1",
                  "    port: %d" % port, "    speed: %d" % baud]
    return "\n".join(lines) + "\n"


class Farm:
    """N emulated boards exported through labgrid; `boards` lists (place, url, pty, emulator).
    With `repl`, each board is at its MicroPython REPL (the micropython core's --repl)."""

    def __init__(self, n, coordinator=None, prefix="npu", baud=None, core=None,
                 board=None, workdir=None, repl=False):
        from .profiles import DEFAULT
        from .pytest_plugin import Emulator
        core = core or ("micropython" if repl else "cpython")
        if repl and core != "micropython":
            raise NpuError("npu farm up --repl: the boards show MicroPython's REPL on the "
                           "micropython core; give --core micropython or leave --core out")
        self.address = coordinator_address(coordinator)
        self.procs, self.emulators, self.boards, self.places = [], [], [], []
        self.started_coordinator = False
        self._tmp = tempfile.TemporaryDirectory(prefix="npu-farm-") if workdir is None else None
        self.workdir = workdir or self._tmp.name
        self.exporter_name = "%s-farm-%d" % (prefix, os.getpid())
        line_baud = int(baud) if baud and str(baud).isdigit() else 115200
        try:
            self._coordinator()
            # --repl: the VM's REPL, as a board before `npu firmware install` shows it
            options = (["--baud", str(baud)] if baud else []) + (["--repl"] if repl else [])
            served = []
            for k in range(1, n + 1):
                flash = os.path.join(self.workdir, "flash-%d" % k)
                os.makedirs(flash, exist_ok=True)
                emu = Emulator(core, board or DEFAULT[core], flash, options=options)
                self.emulators.append(emu)
                served.append(("%s-%d" % (prefix, k), emu, _free_port()))
            self._ser2net([(emu.port, port, line_baud) for _, emu, port in served])
            self._exporter([(group, port, line_baud) for group, _, port in served])
            self._places([group for group, _, _ in served])
            self.boards = [(group, "rfc2217://127.0.0.1:%d" % port, emu.port, emu)
                           for group, emu, port in served]
        except BaseException:
            self.close()
            raise

    def _spawn(self, cmd, log):
        from .pytest_plugin import _die_with_parent
        out = open(os.path.join(self.workdir, log), "wb")
        # its own session (a Ctrl-C reaches us, and we stop it), dying with us on Linux
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=self.workdir, start_new_session=True,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        out.close()
        self.procs.append(proc)
        return proc

    def _wait(self, what, ready, proc, log):
        deadline = time.monotonic() + _START_TIMEOUT
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(self.workdir, log), errors="replace") as f:
                    last = (f.read().strip().splitlines() or ["no output"])[-1]
                raise NpuError("%s did not start (%s); its log: %s"
                               % (what, last, os.path.join(self.workdir, log)))
            time.sleep(0.1)

    def _coordinator(self):
        host, _, port = self.address.rpartition(":")
        if _answers(host, port):
            return
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise NpuError("no labgrid coordinator answers at %s; start it there, or give a "
                           "loopback --coordinator to have one started here" % self.address)
        proc = self._spawn([_tool("labgrid-coordinator"), "-l", self.address], "coordinator.log")
        self.started_coordinator = True
        self._wait("labgrid-coordinator on %s" % self.address, lambda: _answers(host, port), proc,
                   "coordinator.log")

    def _ser2net(self, boards):
        path = os.path.join(self.workdir, "ser2net.yaml")
        with open(path, "w") as f:
            f.write(ser2net_config(boards))
        # -n: stay in the foreground; -P: its pid file in our directory, not /run
        proc = self._spawn([ser2net_binary(), "-n", "-d", "-c", path, "-P",
                            os.path.join(self.workdir, "ser2net.pid")], "ser2net.log")
        self._wait("ser2net", lambda: all(_answers("127.0.0.1", p) for _, p, _ in boards), proc,
                   "ser2net.log")

    def _exporter(self, groups):
        path = os.path.join(self.workdir, "exporter.yaml")
        with open(path, "w") as f:
            f.write(exporter_config(groups))
        proc = self._spawn([_tool("labgrid-exporter"), "-c", self.address, "-n", self.exporter_name,
                            "--hostname", "127.0.0.1", path], "exporter.log")
        with Coordinator(self.address) as c:
            def ready():
                c.loop.run_until_complete(c.session.sync_with_coordinator())
                return len(c.session.resources.get(self.exporter_name, {})) == len(groups)
            self._wait("labgrid-exporter", ready, proc, "exporter.log")

    def _places(self, groups):
        with Coordinator(self.address) as c:
            for group in groups:
                c.add(group, "%s/%s/NetworkSerialPort" % (self.exporter_name, group))
                self.places.append(group)

    def close(self):
        """Delete our places (releasing them first), stop exporter, ser2net and boards."""
        if self.places:
            try:
                with Coordinator(self.address) as c:
                    for name in self.places:
                        if name in c.session.places and c.place(name).acquired:
                            c.release(name)
                        c.delete(name)
            except NpuError:
                pass
            self.places = []
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs = []
        for emu in self.emulators:
            emu.stop()
        self.emulators = []
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
