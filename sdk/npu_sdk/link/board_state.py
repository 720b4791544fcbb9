"""What a board that does not answer the npu protocol is doing, and getting it back.

A board at its MicroPython REPL shows a `>>>` prompt after Ctrl-C (the friendly REPL) or the
banner `raw REPL; CTRL-B to exit` after Ctrl-A (the raw REPL, where the HELLO frame's own 0x01
may already have put it). Ctrl-C, Ctrl-A and Ctrl-B are harmless to the npu firmware: it reads
frames with Ctrl-C disabled and skips bytes outside them.
"""
import time

from ..errors import LinkError

CTRL_D = b"\x04"  # soft reset, at the friendly prompt or an empty raw REPL command
PROMPT = b">>> "
RAW_BANNER = b"raw REPL; CTRL-B to exit"

AT_REPL = "the board on %s is at its MicroPython REPL, not in the npu firmware: `npu reset` " \
          "restarts the firmware"
NO_FIRMWARE = "the board on %s runs MicroPython without the npu firmware: `npu firmware " \
              "install --port %s` puts it there"


class AtRepl(LinkError):
    """The board answered as MicroPython's REPL; `has_firmware`: whether `npu reset` helps."""

    def __init__(self, message, has_firmware):
        super().__init__(message)
        self.has_firmware = has_firmware


def _read_until(ser, marks, seconds):
    """The bytes the board sends within `seconds`, stopping early at any of `marks`."""
    seen = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end and not any(m in seen for m in marks):
        seen += ser.read(ser.in_waiting or 1)
    return seen


def probe(ser, port, wait=0.5):
    """An AtRepl naming the state of a board that did not answer HELLO, or None when it
    shows no REPL either (silent, busy or not a board). Leaves a board at the friendly REPL."""
    ser.reset_input_buffer()
    ser.write(b"\x03")  # Ctrl-C: the friendly REPL prompts afresh
    if PROMPT not in _read_until(ser, (PROMPT,), wait):
        ser.write(b"\x01")  # Ctrl-A: the raw REPL prints its banner (from the friendly one too)
        if RAW_BANNER not in _read_until(ser, (RAW_BANNER,), wait):
            return None
        ser.write(b"\x02")  # Ctrl-B: to the friendly REPL, which prompts
        if PROMPT not in _read_until(ser, (PROMPT,), wait):
            return None
    ser.write(b"import npufw\r\n")  # does this MicroPython have the npu firmware?
    answer = _read_until(ser, (PROMPT,), max(wait, 2.0))
    if b"Error" in answer:
        return AtRepl(NO_FIRMWARE % (port, port), False)
    return AtRepl(AT_REPL % port, True)


def soft_reset(ser):
    """Leave the REPL (raw or friendly) and soft-reset: MicroPython runs main.py, the firmware."""
    ser.write(b"\r\x03\x03")  # stop whatever runs, clear the line
    ser.write(b"\x02")  # leave a raw REPL
    time.sleep(0.1)
    ser.reset_input_buffer()
    ser.write(b"\x04")  # Ctrl-D on an empty line: soft reset
