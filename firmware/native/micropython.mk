# The npu module (the board's NPU driver) for a MicroPython port's make build:
#   make USER_C_MODULES=path/to/firmware/native [CMSIS_NN_DIR=path/to/CMSIS-NN]
# The kernel core is the emulator's: board_emulator/csrc in a checkout, csrc/ next to native/
# in an installed wheel (NPU_CORE_DIR overrides where).
NPU_MOD_DIR := $(USERMOD_DIR)
NPU_CORE_DIR ?= $(abspath $(firstword $(wildcard $(NPU_MOD_DIR)/../csrc \
	$(NPU_MOD_DIR)/../../board_emulator/csrc)))

SRC_USERMOD_C += $(NPU_MOD_DIR)/npu_module.c
SRC_USERMOD_LIB_C += $(NPU_MOD_DIR)/npu_cmsis.c $(NPU_CORE_DIR)/npu_checks.c \
	$(NPU_CORE_DIR)/npu_kernels.c
CFLAGS_USERMOD += -I$(NPU_MOD_DIR) -I$(NPU_CORE_DIR) -DNPU_NO_SIMD

ifneq ($(CMSIS_NN_DIR),)
# CMSIS-NN's s8 kernels that npu_cmsis.c calls, with the support functions they call in turn
# (the int8 ones: not the float, int16 or int4 families)
NPU_CMSIS := $(CMSIS_NN_DIR)/Source
SRC_USERMOD_LIB_C += $(wildcard $(addprefix $(NPU_CMSIS)/, ConvolutionFunctions/*s8*.c \
	PoolingFunctions/*s8*.c TransposeFunctions/*s8*.c)) \
	$(addprefix $(NPU_CMSIS)/FullyConnectedFunctions/, arm_fully_connected_s8.c \
		arm_fully_connected_per_channel_s8.c arm_fully_connected_get_buffer_sizes_s8.c \
		arm_vector_sum_s8.c) \
	$(NPU_CMSIS)/BasicMathFunctions/arm_elementwise_add_s8.c \
	$(filter-out %_f16.c %_f32.c %_s16.c %_s4.c %lstm_step_s8.c, \
		$(wildcard $(NPU_CMSIS)/NNSupportFunctions/*.c))
CFLAGS_USERMOD += -DNPU_CMSIS_NN -I$(CMSIS_NN_DIR)/Include
endif

# The kernel core and CMSIS-NN at NPU_COPT, not the port's -Os (measured on the Cortex-M4
# image: ResNet8 41.6M -> 30.4M instructions per inference)
NPU_COPT ?= -O2
NPU_LIB_O := $(addprefix $(BUILD)/, $(filter-out $(NPU_MOD_DIR)/%, $(SRC_USERMOD_LIB_C:.c=.o))) \
	$(addprefix $(BUILD)/$(notdir $(NPU_MOD_DIR))/, npu_cmsis.o)
$(NPU_LIB_O): CFLAGS += $(NPU_COPT)
