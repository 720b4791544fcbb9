# Arm MPS3-AN547: Cortex-M55 (Corstone-300 class), as MicroPython's boards/MPS3_AN547,
# with single-precision floats (Debian's newlib lacks double_t for the double build).
QEMU_ARCH = arm
QEMU_MACHINE = mps3-an547

CFLAGS += -mthumb -mcpu=cortex-m55 -mfloat-abi=hard -mfpu=fpv5-sp-d16
CFLAGS += -DQEMU_SOC_MPS3
CFLAGS += -DMICROPY_HW_MCU_NAME='"Cortex-M55"'
CFLAGS += -DCPU_FREQ_HZ=32000000

LDSCRIPT = mcu/arm/mps3.ld

SRC_BOARD_O = shared/runtime/gchelper_generic.o

MPY_CROSS_FLAGS += -march=armv7emsp

MICROPY_FLOAT_IMPL = float
SUPPORTS_HARDWARE_FP_SINGLE = 1
