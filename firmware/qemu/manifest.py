# Frozen into the npu board image: its bytecode and viper machine code run from flash,
# so the heap is left for data. $(NPU_FIRMWARE) is a folder holding main.py and npufw/, as a
# board's filesystem does (npu_sdk.firmware_image copies them there from the installed package).
module("main.py", base_path="$(NPU_FIRMWARE)")
package("npufw", base_path="$(NPU_FIRMWARE)")
