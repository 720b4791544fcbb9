"""The board's kernel set: the native `npu` module's kernel where the firmware image has one
(its NPU driver, firmware/native: the C kernel core, CMSIS-NN on Arm), viper's otherwise.

The choice is per kernel, not per image: an image built before a kernel existed in C still
runs it, in viper, and every other kernel natively. MicroPython only."""
from . import kernels as viper


class KernelSet:
    """Attributes: every public viper kernel, replaced by the native one of the same name;
    and the native module's 16x8 kernels (interp._kernel16 takes viper's from kernels16,
    imported only when a model needs one: it is not read here, to keep it off the idle
    heap)."""


def kernel_set(native=None, viper_only=False):
    """(the kernel set, its name for `npu info`): 'native (BACKEND)' when any kernel is
    native, else 'viper'. `native`: the module to use (default: `import npu`, if built in);
    viper_only: viper's kernels even so (`npu emulate --kernels viper`, to compare)."""
    if viper_only:
        return viper, "viper"
    if native is None:
        try:
            import npu as native
        except ImportError:
            return viper, "viper"
    ks = KernelSet()
    used = 0
    for name in dir(viper):
        if name.startswith("_"):
            continue
        fn = getattr(native, name, None)
        if fn is not None and name != "release":
            used += 1
        else:
            fn = getattr(viper, name)
        setattr(ks, name, fn)
    for name in dir(native):
        if "_s16" in name and not hasattr(ks, name):
            used += 1
            setattr(ks, name, getattr(native, name))
    if not used:
        return viper, "viper"
    return ks, "native (%s)" % getattr(native, "BACKEND", "C")
