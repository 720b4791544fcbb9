# The npu module (the board's NPU driver) for a MicroPython port's make build:
#   make USER_C_MODULES=path/to/firmware/native [CMSIS_NN_DIR=path/to/CMSIS-NN]
# The kernel core is the emulator's: board_emulator/csrc (NPU_CORE_DIR overrides where).
NPU_MOD_DIR := $(USERMOD_DIR)
NPU_CORE_DIR ?= $(abspath $(NPU_MOD_DIR)/../../board_emulator/csrc)

SRC_USERMOD_C += $(NPU_MOD_DIR)/npu_module.c
SRC_USERMOD_LIB_C += $(NPU_MOD_DIR)/npu_cmsis.c $(NPU_CORE_DIR)/npu_checks.c \
	$(NPU_CORE_DIR)/npu_kernels.c
CFLAGS_USERMOD += -I$(NPU_MOD_DIR) -I$(NPU_CORE_DIR) -DNPU_NO_SIMD

ifneq ($(CMSIS_NN_DIR),)
# CMSIS-NN's s8 kernels that npu_cmsis.c calls, with what they call in turn
NPU_CMSIS_SRC := $(wildcard $(addprefix $(CMSIS_NN_DIR)/Source/, \
	ConvolutionFunctions/*_s8.c ConvolutionFunctions/arm_nn_mat_mult_kernel_s8_s16.c \
	ConvolutionFunctions/arm_nn_mat_mult_kernel_row_offset_s8_s16.c \
	ConvolutionFunctions/*_get_buffer_sizes_s8.c \
	FullyConnectedFunctions/arm_fully_connected_s8.c \
	FullyConnectedFunctions/arm_fully_connected_get_buffer_sizes_s8.c \
	PoolingFunctions/arm_avgpool_s8.c PoolingFunctions/arm_max_pool_s8.c \
	BasicMathFunctions/arm_elementwise_add_s8.c \
	NNSupportFunctions/arm_nn_*.c NNSupportFunctions/arm_s8_to_s16_unordered_with_offset.c \
	NNSupportFunctions/arm_q7_to_q15_with_offset.c))
SRC_USERMOD_LIB_C += $(NPU_CMSIS_SRC)
CFLAGS_USERMOD += -DNPU_CMSIS_NN -I$(CMSIS_NN_DIR)/Include
endif
