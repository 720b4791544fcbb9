"""npu-sdk host SDK: compile TFLite models to int8 blobs and drive NPU boards."""
