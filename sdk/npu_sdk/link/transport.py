"""Byte transport: any pyserial URL (a pty path, /dev/ttyACM0, socket://, rfc2217://, loop://)."""
import serial

from ..errors import LinkError

DEFAULT_BAUD = 115200


def open_port(port, baudrate=DEFAULT_BAUD):
    if not port:
        raise LinkError("no serial port given: pass --port PORT or set NPU_PORT "
                        "(`npu emulate` prints the port of a virtual board)")
    try:
        s = serial.serial_for_url(port, baudrate=baudrate, timeout=0.05, write_timeout=5,
                                  exclusive=None)
    except (serial.SerialException, ValueError, OSError) as e:
        raise LinkError("cannot open serial port %s: %s; check the board is connected "
                        "(or that `npu emulate` is running) and the port name" % (port, e)) from e
    return s
