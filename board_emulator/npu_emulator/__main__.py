"""python -m npu_emulator: the same as `npu emulate`."""
import sys

from .emulator import main

sys.exit(main())
