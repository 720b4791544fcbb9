"""`npu firmware install`: copy a firmware build to a MicroPython board over its raw REPL.

Built on mpremote's SerialTransport (any pyserial URL): enter the raw REPL (Ctrl-C,
Ctrl-A, soft reset), read the board's .mpy target, hash every file of the manifest on
the board with hashlib in one round trip, copy only the files that differ, remove stale
npufw modules (an old npufw/X.py would shadow X.mpy), then leave the raw REPL and soft
reset so the board starts main.py.

Paths are relative to the REPL's working directory: "/" on a board after a soft
reset; the emulator's flash directory with `npu emulate --repl`. Each file is written
as NAME.part and renamed over NAME, then hashed again on the board.
"""
import ast
import base64
import contextlib
import io
import tempfile
from dataclasses import dataclass, field

from . import firmware_build
from .errors import LinkError, NpuError

_CHUNK = 1536  # raw bytes per write: 2 KB of base64 source for the board to compile

_HASH = """
import hashlib, binascii
def _npu_hash(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    h = hashlib.sha256()
    b = bytearray(512)
    m = memoryview(b)
    while True:
        n = f.readinto(b)
        if not n:
            break
        h.update(m[:n])
    f.close()
    return binascii.hexlify(h.digest()).decode()
"""

_PREPARE = """
import os, binascii
def _npu_mkdirs(d):
    p = ''
    for part in d.split('/'):
        p = p + '/' + part if p else part
        try:
            os.mkdir(p)
        except OSError:
            pass
def _npu_replace(src, dst):
    try:
        os.rename(src, dst)
    except OSError:  # FAT does not rename over a file
        os.remove(dst)
        os.rename(src, dst)
"""


@dataclass
class InstallResult:
    arch: str
    cwd: str
    copied: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    removed: list = field(default_factory=list)


def _open(port, baudrate, timeout):
    try:
        from mpremote.transport_serial import SerialTransport
    except ImportError as e:
        raise NpuError("npu firmware install needs mpremote: pip install mpremote") from e
    from .link.transport import releasing, rfc2217_url
    url, lease = port, None
    if port.startswith("labgrid://"):  # a farm's board: held while the transport is open
        from . import places
        lease = places.lease(port)
        url = lease.url
    if url.startswith("rfc2217://"):
        url = rfc2217_url(url)
    try:
        transport = SerialTransport(url, baudrate=baudrate, timeout=timeout)
    except Exception as e:  # mpremote raises TransportError, pyserial SerialException
        if lease is not None:
            lease.release()
        raise LinkError("cannot open %s: %s; check the port (--port or $NPU_PORT)" % (port, e)) from e
    if lease is not None:
        transport.close = releasing(transport.close, lease)
    return transport


class _Repl:
    """The few raw-REPL operations install needs, over an mpremote transport."""

    def __init__(self, transport):
        self.t = transport

    def exec(self, code):
        return self.t.exec(code)

    def eval(self, expr):
        return ast.literal_eval(self.t.exec("print(repr(%s))" % expr).decode().strip())

    def hashes(self, paths):
        return self.eval("[_npu_hash(p) for p in %r]" % (list(paths),))

    def write(self, rel, data):
        if "/" in rel:
            self.exec("_npu_mkdirs(%r)" % rel.rsplit("/", 1)[0])
        part = rel + ".part"
        self.exec("_f = open(%r, 'wb')\n_w = _f.write\n_d = binascii.a2b_base64" % part)
        for off in range(0, len(data), _CHUNK):
            self.exec("_w(_d(%r))" % base64.b64encode(data[off:off + _CHUNK]).decode())
        self.exec("_f.close()\n_npu_replace(%r, %r)" % (part, rel))

    def stale_modules(self, keep):
        names = self.eval("[n for n in (os.listdir('npufw') if 'npufw' in os.listdir() else ())]")
        return ["npufw/" + n for n in names
                if n.endswith((".py", ".mpy", ".part")) and "npufw/" + n not in keep]


def install(port, src_dir=None, baudrate=115200, timeout=10.0, reset=True, progress=None):
    """Install a firmware build (src_dir; default: one built now for the board's target).
    progress(rel, action) is called per file with "copy", "skip" or "remove"."""
    manifest = firmware_build.load(src_dir) if src_dir else None
    transport = _open(port, baudrate, timeout)
    from mpremote.transport import TransportError, TransportExecError
    try:
        # mpremote prints what it got on failure: the error below says it in one line
        with contextlib.redirect_stdout(io.StringIO()):
            transport.enter_raw_repl(soft_reset=True)
        repl = _Repl(transport)
        repl.exec("import sys, os" + _HASH + _PREPARE)
        board_mpy = repl.eval("getattr(sys.implementation, '_mpy', 0)")
        with tempfile.TemporaryDirectory(prefix="npu-fw-") as tmp:
            if manifest is None:
                arch = firmware_build.decode_mpy(board_mpy)[2]
                if arch is None:
                    raise NpuError("the board does not report a native architecture "
                                   "(sys.implementation._mpy = %d); build with `npu firmware "
                                   "build -o DIR --arch ARCH` and pass --from DIR" % board_mpy)
                src_dir = tmp
                manifest = firmware_build.build(tmp, arch)
            firmware_build.check_target(manifest, board_mpy)
            result = InstallResult(manifest["arch"], repl.eval("os.getcwd()"))
            files = sorted(manifest["files"].items())
            on_board = repl.hashes([rel for rel, _ in files])
            for (rel, digest), have in zip(files, on_board):
                if have == digest:
                    result.skipped.append(rel)
                    _tell(progress, rel, "skip")
                    continue
                _tell(progress, rel, "copy")
                with open("%s/%s" % (src_dir, rel), "rb") as f:
                    repl.write(rel, f.read())
                if repl.hashes([rel]) != [digest]:
                    raise NpuError("%s does not read back with the right SHA-256 on the board; "
                                   "check its free flash and run the install again" % rel)
                result.copied.append(rel)
            for rel in repl.stale_modules(manifest["files"]):
                _tell(progress, rel, "remove")
                repl.exec("os.remove(%r)" % rel)
                result.removed.append(rel)
        transport.exit_raw_repl()
        if reset:
            transport.serial.write(b"\x04")  # soft reset in the friendly REPL: the board runs main.py
        return result
    except TransportExecError as e:
        last = (e.error_output.strip().splitlines() or ["?"])[-1]
        raise NpuError("the board failed during the install: %s; check its free flash and run "
                       "the install again" % last) from e
    except TransportError as e:
        raise LinkError("the raw REPL on %s failed: %s; is MicroPython at its REPL? A board "
                        "already serving the npu link ignores Ctrl-C (docs/boards.md)"
                        % (port, e)) from e
    except OSError as e:
        raise LinkError("the link to %s failed: %s" % (port, e)) from e
    finally:
        transport.close()


def _tell(progress, rel, action):
    if progress is not None:
        progress(rel, action)
