"""Board profiles: the RAM and flash the firmware is told about, the board's UART rate and
its int8 MAC throughput for latency estimates and its work budget (docs/boards.md). The SDK
(`npu inspect --board`, flash pre-flight), the emulator and the pytest plugin all read them
here; the firmware gets the budgets as a generated table (tools/make_firmware_opcodes.py)."""
from .errors import NpuError
from .ops import MAX_RUN_MACS

PROFILES = {
    # ram: bytes the firmware may use (the MicroPython heap on that core); flash: bytes for
    # models; baud: the board's UART (paced only with --baud board); macs_per_s: sustained
    # int8 multiply-accumulates per second of the board's optimized kernels (None: the host)
    "host": {"ram": 64 << 20, "flash": 64 << 20, "baud": 921600, "macs_per_s": None},
    # STM32F4-class Cortex-M4F at 168 MHz, CMSIS-NN SMLAD: about 1 MAC per cycle sustained
    "cortex-m4-256k": {"ram": 256 << 10, "flash": 1 << 20, "baud": 115200,
                       "macs_per_s": 168e6},
    # ESP32-S3 at 240 MHz, ESP-NN with the PIE vector unit: about 2 MACs per cycle sustained
    "esp32-s3-512k": {"ram": 512 << 10, "flash": 8 << 20, "baud": 921600,
                      "macs_per_s": 480e6},
    # the qemu core's boards (`qemu`: the image's target): Arm MPS3-AN547, Cortex-M55, and
    # MPS2-AN386, Cortex-M4F at 120 MHz like MLPerf Tiny's STM32L4R5 reference board
    "mps3-an547": {"ram": 256 << 10, "flash": 1 << 20, "baud": 115200, "macs_per_s": 168e6,
                   "qemu": "mps3-an547"},
    "mps2-an386": {"ram": 256 << 10, "flash": 1 << 20, "baud": 115200, "macs_per_s": 120e6,
                   "qemu": "mps2-an386"},
}
DEFAULT = {"cpython": "host", "micropython": "host", "qemu": "mps3-an547"}

#: A board refuses, at install and at load, a model whose one RUN would take longer than
#: this on its optimized kernels (macs_per_s): the work budget of one RUN.
RUN_SECONDS = 1


def run_macs(name):
    """The work (multiply-accumulates, pooling window elements) of one RUN that a board of
    profile `name` allows; MAX_RUN_MACS for the host and for a board of no known profile."""
    rate = PROFILES.get(name, {}).get("macs_per_s")
    return MAX_RUN_MACS if rate is None else min(MAX_RUN_MACS, int(rate * RUN_SECONDS))


def get(name):
    try:
        return dict(PROFILES[name], name=name)
    except KeyError:
        raise NpuError("unknown board profile %r; choose one of: %s"
                       % (name, ", ".join(sorted(PROFILES)))) from None
