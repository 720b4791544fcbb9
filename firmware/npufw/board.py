"""The board the firmware is handed: it never imports machine- or emulator-specific code."""


class Board:
    """uart: read() -> bytes (None at end), write(bytes); store: npufw.store.Store;
    clock: ticks_us(), ticks_diff(a, b); npu: the kernel set; limits: {"ram", "flash", "board"}."""

    def __init__(self, uart, store, clock, npu, limits, npu_name):
        self.uart = uart
        self.store = store
        self.clock = clock
        self.npu = npu
        self.limits = limits
        self.npu_name = npu_name
