# Frozen into the npu board image: its bytecode and viper machine code run from flash,
# so the heap is left for data. $(NPU_FIRMWARE) is the firmware/ folder (main.py, npufw/).
module("main.py", base_path="$(NPU_FIRMWARE)")
package("npufw", base_path="$(NPU_FIRMWARE)")
