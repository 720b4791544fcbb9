"""The activation range methods of post-training quantization and their defaults.

Plain constants, no numpy: the `npu` parser offers them as --method choices without
loading the quantizer (quantize.py, which imports them from here).
"""
METHODS = ("minmax", "percentile", "mse")
DEFAULT_METHOD = "percentile"  # measured: docs/quantization.md, tools/quant_compare.py
DEFAULT_PERCENTILE = 99.99
