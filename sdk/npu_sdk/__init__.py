"""npu-sdk host SDK: compile TFLite models to int8 blobs and drive NPU boards."""


def _version():
    """The installed distribution's version (pyproject.toml is its one source)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("npu-sdk")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"


__version__ = _version()
