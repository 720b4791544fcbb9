"""npufw: the firmware that runs on boards (MicroPython) and in the emulator (CPython)."""
