"""The board the firmware is handed: it never imports machine- or emulator-specific code."""

# Exit codes of the emulator's cores (firmware/main.py on the MicroPython VM, npu_emulator):
POWER_CUT_EXIT = 3  # a power cut at a chosen flash write (--power-cut-after-writes)
REPL_EXIT = 4  # the host asked for the REPL


class Board:
    """uart: read() -> bytes (None at end), write(bytes); store: npufw.store.Store;
    clock: ticks_us(), ticks_diff(a, b); npu: the kernel set; limits: {"ram", "flash", "board"};
    heap: None, or heap() -> bytes of the heap in use after a collection (MicroPython's
    gc.mem_alloc(): the boards whose RAM is the VM's heap); pool: None, or the model pool
    (npufw/pool.py) that models' arenas and buffers come from."""

    def __init__(self, uart, store, clock, npu, limits, npu_name, heap=None, pool=None):
        self.uart = uart
        self.store = store
        self.clock = clock
        self.npu = npu
        self.limits = limits
        self.npu_name = npu_name
        self.heap = heap
        self.pool = pool
