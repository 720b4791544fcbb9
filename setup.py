"""Only the C extension lives here; everything else is in pyproject.toml."""
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "npu_emulator._kernels",
            sources=["board_emulator/csrc/_kernels.c", "board_emulator/csrc/npu_kernels.c"],
            include_dirs=["board_emulator/csrc"],
            extra_compile_args=["-O3", "-std=c99", "-Wall", "-Wextra"],
        )
    ]
)
