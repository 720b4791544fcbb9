"""Only the C extension lives here; everything else is in pyproject.toml."""
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "npu_emulator._kernels",
            # npu_kernels_avx2.c selects its own target per function (no -march here):
            # the wheel runs on any x86-64 and picks AVX2 at run time.
            sources=["board_emulator/csrc/_kernels.c", "board_emulator/csrc/npu_checks.c",
                     "board_emulator/csrc/npu_kernels.c",
                     "board_emulator/csrc/npu_kernels_avx2.c"],
            depends=["board_emulator/csrc/npu_kernels.h", "board_emulator/csrc/npu_checks.h",
                     "board_emulator/csrc/npu_kernels_internal.h"],
            include_dirs=["board_emulator/csrc"],
            extra_compile_args=["-O3", "-std=c99", "-Wall", "-Wextra"],
        )
    ]
)
