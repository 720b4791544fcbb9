# The npu module (the board's NPU driver) for a MicroPython port's CMake build (rp2, esp32):
#   make USER_C_MODULES=path/to/firmware/native/micropython.cmake [CMSIS_NN_DIR=...]
# The kernel core is the emulator's: board_emulator/csrc in a checkout, csrc/ next to native/
# in an installed wheel.
add_library(usermod_npu INTERFACE)

if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/../csrc)
    set(NPU_CORE_DIR ${CMAKE_CURRENT_LIST_DIR}/../csrc)
else()
    set(NPU_CORE_DIR ${CMAKE_CURRENT_LIST_DIR}/../../board_emulator/csrc)
endif()

target_sources(usermod_npu INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/npu_module.c
    ${CMAKE_CURRENT_LIST_DIR}/npu_cmsis.c
    ${NPU_CORE_DIR}/npu_checks.c
    ${NPU_CORE_DIR}/npu_kernels.c
)

target_include_directories(usermod_npu INTERFACE ${CMAKE_CURRENT_LIST_DIR} ${NPU_CORE_DIR})
target_compile_definitions(usermod_npu INTERFACE NPU_NO_SIMD)

# CMSIS-NN on Arm cores (rp2's Cortex-M33, not esp32's Xtensa): CMSIS_NN_DIR=path
if(DEFINED ENV{CMSIS_NN_DIR} OR DEFINED CMSIS_NN_DIR)
    if(NOT DEFINED CMSIS_NN_DIR)
        set(CMSIS_NN_DIR $ENV{CMSIS_NN_DIR})
    endif()
    file(GLOB NPU_CMSIS_SRC
        ${CMSIS_NN_DIR}/Source/ConvolutionFunctions/*_s8.c
        ${CMSIS_NN_DIR}/Source/ConvolutionFunctions/arm_nn_mat_mult_kernel_*s8_s16.c
        ${CMSIS_NN_DIR}/Source/FullyConnectedFunctions/*_s8.c
        ${CMSIS_NN_DIR}/Source/PoolingFunctions/arm_avgpool_s8.c
        ${CMSIS_NN_DIR}/Source/PoolingFunctions/arm_max_pool_s8.c
        ${CMSIS_NN_DIR}/Source/BasicMathFunctions/arm_elementwise_add_s8.c
        ${CMSIS_NN_DIR}/Source/NNSupportFunctions/*.c)
    target_sources(usermod_npu INTERFACE ${NPU_CMSIS_SRC})
    target_include_directories(usermod_npu INTERFACE ${CMSIS_NN_DIR}/Include)
    target_compile_definitions(usermod_npu INTERFACE NPU_CMSIS_NN)
endif()

target_link_libraries(usermod INTERFACE usermod_npu)
