/*
 * The npu board's C entry point for MicroPython's qemu port: the port's own main.c
 * (MIT, Copyright (c) 2014-2024 Damien P. George), plus what a real board does at boot:
 * run the frozen main.py (the npu firmware) before the REPL.
 *
 * main.py returning hands the UART to the REPL (the host's REPL request); Ctrl-D there
 * soft-resets back into main.py. main.py raising SystemExit(code) powers the board off:
 * QEMU exits with `code` through semihosting (the emulator's power cut, exit code 3).
 *
 * The image is built with MICROPY_ENABLE_PYSTACK (npu_sdk.firmware_image): Python frames and
 * a star call's argument array (the interpreter's `fn(*args)` per op) live on this stack, not
 * on the heap, so an inference allocates nothing and its instruction count cannot depend on
 * how earlier requests left the heap.
 */

#include <stdlib.h>

#include "py/compile.h"
#include "py/runtime.h"
#include "py/gc.h"
#include "py/mperrno.h"
#include "shared/runtime/gchelper.h"
#include "shared/runtime/pyexec.h"
#include "shared/runtime/semihosting_arm.h"

#if MICROPY_HEAP_SIZE <= 0
#error MICROPY_HEAP_SIZE must be a positive integer.
#endif

static uint32_t gc_heap[MICROPY_HEAP_SIZE / sizeof(uint32_t)];
static mp_obj_t pystack[4096];

int main(int argc, char **argv) {
    mp_cstack_init_with_sp_here(MICROPY_STACK_SIZE);
    gc_init(gc_heap, (char *)gc_heap + MICROPY_HEAP_SIZE);

    for (;;) {
        mp_pystack_init(pystack, &pystack[MP_ARRAY_SIZE(pystack)]);
        mp_init();

        int ret = pyexec_frozen_module("main.py", false);
        if (ret & PYEXEC_FORCED_EXIT) {
            mp_semihosting_exit(ret & 0xff);
        }

        for (;;) {
            if (pyexec_mode_kind == PYEXEC_MODE_RAW_REPL) {
                if (pyexec_raw_repl() != 0) {
                    break;
                }
            } else {
                if (pyexec_friendly_repl() != 0) {
                    break;
                }
            }
        }

        mp_printf(&mp_plat_print, "MPY: soft reboot\n");

        gc_sweep_all();
        mp_deinit();
    }
}

void gc_collect(void) {
    gc_collect_start();
    gc_helper_collect_regs_and_stack();
    gc_collect_end();
}

void nlr_jump_fail(void *val) {
    mp_printf(&mp_plat_print, "uncaught NLR\n");
    exit(1);
}
