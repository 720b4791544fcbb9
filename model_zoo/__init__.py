"""The npu-sdk model zoo as an installable package (`npu_zoo`): data files only.

Use `npu_sdk.zoo` (or `npu zoo list`, `npu zoo path NAME`) to find the models.
"""
