"""Board profiles: what the firmware is told about RAM and flash (docs/boards.md)."""

PROFILES = {
    # name: RAM bytes, flash bytes for models, UART baud
    "host": {"ram": 64 << 20, "flash": 64 << 20, "baud": 921600},
    "cortex-m4-256k": {"ram": 256 << 10, "flash": 1 << 20, "baud": 115200},
    "esp32-s3-512k": {"ram": 512 << 10, "flash": 8 << 20, "baud": 921600},
}


def get(name):
    try:
        return dict(PROFILES[name], name=name)
    except KeyError:
        raise SystemExit("npu emulate: unknown board profile %r; choose one of: %s"
                         % (name, ", ".join(sorted(PROFILES)))) from None
