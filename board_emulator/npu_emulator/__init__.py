"""npu_emulator: a virtual board around the same firmware, on a pseudo-terminal."""
