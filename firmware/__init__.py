"""The firmware's files as the host finds them (`npu_firmware`): main.py, and the qemu board's
port files in qemu/. The SDK reads them through importlib.resources (npu_sdk.firmware_build),
so they are found the same way in a wheel and in a source checkout. Never copied to a board.
"""
