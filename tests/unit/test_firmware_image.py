"""The qemu image's cache key covers the native module: its C sources, the kernel core's and
CMSIS-NN's, so an edit to any of them builds a new image."""
import pytest

from npu_sdk import firmware_image
from npu_sdk.errors import NpuError
from tests.conftest import ROOT


def test_the_key_holds_every_c_source_of_the_native_module():
    parts = dict(firmware_image._native_inputs(None))
    for src in [ROOT / "firmware" / "native" / n for n in ("npu_module.c", "npu_cmsis.c",
                                                            "micropython.mk")] + \
               [ROOT / "board_emulator" / "csrc" / n for n in ("npu_kernels.c", "npu_kernels.h",
                                                               "npu_checks.c", "npu_checks.h")]:
        assert parts["native/%s" % src.name] == src.read_bytes()


def test_the_key_holds_cmsis_nn_when_it_is_used(tmp_path):
    (tmp_path / "Include").mkdir()
    (tmp_path / "Source" / "PoolingFunctions").mkdir(parents=True)
    (tmp_path / "Include" / "arm_nnfunctions.h").write_text("/* v1 */")
    (tmp_path / "Source" / "PoolingFunctions" / "arm_max_pool_s8.c").write_text("/* v1 */")
    cmsis = firmware_image.cmsis_nn_dir(str(tmp_path))
    with_it = dict(firmware_image._native_inputs(cmsis))
    assert with_it["cmsis-nn/Source/PoolingFunctions/arm_max_pool_s8.c"] == b"/* v1 */"
    assert not any(k.startswith("cmsis-nn/") for k, _ in firmware_image._native_inputs(None))


def test_a_folder_without_cmsis_nn_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(NpuError, match="not a CMSIS-NN source tree .* --cmsis-nn DIR"):
        firmware_image.cmsis_nn_dir(str(tmp_path))


def test_the_image_key_includes_the_native_inputs(monkeypatch):
    monkeypatch.setattr(firmware_image, "_native_inputs", lambda cmsis: [("native/x.c", b"v1")])
    monkeypatch.setattr(firmware_image, "_mpy_cross", lambda: "true")
    keys = dict(firmware_image._inputs("mps3-an547", 1 << 18, ROOT))
    assert keys["native/x.c"] == b"v1"


def test_an_installed_wheels_native_sources_are_found(tmp_path, monkeypatch):
    """A wheel ships the module (npu_firmware/native) and the kernel core (npu_firmware/csrc):
    an image built from it has the native module, as one built from the checkout does."""
    fw = tmp_path / "site-packages" / "npu_firmware"
    for rel in ("native/micropython.mk", "csrc/npu_kernels.c"):
        (fw / rel).parent.mkdir(parents=True, exist_ok=True)
        (fw / rel).write_text("/* */")
    monkeypatch.setattr(firmware_image, "firmware_dir", lambda: fw)
    assert firmware_image.native_dirs() == (fw / "native", fw / "csrc")


def test_the_image_key_includes_the_c_flags(monkeypatch):
    monkeypatch.setattr(firmware_image, "_mpy_cross", lambda: "true")
    keys = dict(firmware_image._inputs("mps3-an547", 1 << 18, ROOT))
    assert keys["cflags"] == firmware_image.CFLAGS_EXTRA.encode()
    assert b"MICROPY_ENABLE_PYSTACK=1" in keys["cflags"]
