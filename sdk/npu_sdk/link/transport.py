"""Byte transport: any pyserial URL (a pty path, /dev/ttyACM0, socket://, rfc2217://, loop://),
and labgrid://PLACE for a board of a labgrid farm (npu_sdk.places)."""
import serial
import serial.rfc2217

from ..errors import LinkError

DEFAULT_BAUD = 115200
#: seconds a write may block on a stalled line (a board that stopped reading)
WRITE_TIMEOUT = 5


def open_port(port, baudrate=DEFAULT_BAUD):
    if not port:
        raise LinkError("no serial port given: pass --port PORT or set NPU_PORT "
                        "(`npu emulate` prints the port of a virtual board)")
    lease = None
    if port.startswith("labgrid://"):
        from .. import places
        lease = places.lease(port)  # acquires the place (unless this user holds it already)
        url = lease.url
    else:
        url = port
    try:
        if url.startswith("rfc2217://"):
            # pyserial's RFC 2217 backend refuses a write timeout (NotImplementedError); its
            # writes go to a TCP socket that does not stall like a UART's buffer: it needs none
            url = rfc2217_url(url)
            s = Rfc2217Serial(url, baudrate=baudrate, timeout=0.05)
        else:
            s = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05,
                                      write_timeout=WRITE_TIMEOUT, exclusive=None)
    except (serial.SerialException, ValueError, OSError) as e:
        if lease is not None:
            lease.release()
        where = port if url == port else "%s (%s)" % (port, url)
        raise LinkError("cannot open serial port %s: %s; check the board is connected "
                        "(or that `npu emulate` is running) and the port name" % (where, e)) from e
    if lease is not None:
        s.close = releasing(s.close, lease)
    return s


class Rfc2217Serial(serial.rfc2217.Serial):
    """pyserial's RFC 2217 client without its two pauses: 0.1 s after each SET_CONTROL whose
    answer it ignores (three per open; "this helps getting the unit tests passed"), and 0.3 s
    in close() after the reader thread ends (for a server's quick reconnect: ser2net takes a
    new connection at once). A farm's commands and workers open and close ports often."""

    def rfc2217_set_control(self, value):
        if not self._ignore_set_control_answer:
            return super().rfc2217_set_control(value)
        self._rfc2217_options["control"].set(value)

    def close(self):
        thread, self._thread = self._thread, None
        super().close()  # shuts the socket down (ending the reader thread), skips the sleep
        if thread is not None:
            thread.join(7)


def rfc2217_url(url):
    """ser2net answers no SET_CONTROL for a port without modem lines (a pty, many USB bridges):
    do not wait for it, as labgrid's own serial driver does not."""
    if "ign_set_control" in url:
        return url
    return url + ("&" if "?" in url else "?") + "ign_set_control"


def releasing(close, lease):
    """The port's close(), then the place's release: the place is held while the port is open."""
    def close_and_release():
        try:
            close()
        finally:
            lease.release()
    return close_and_release
