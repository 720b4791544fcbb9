"""The boards this host reaches without a --port: USB serial ports (what mpremote picks from)
and running `npu emulate` boards, which note their pty in a per-user runtime directory
while they serve (a pty has no VID:PID for pyserial's list)."""
import json
import os
import tempfile
from pathlib import Path

from ..errors import NpuError


def runtime_dir():
    """$XDG_RUNTIME_DIR/npu-emulators, else one in the temp directory per user."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base:
        return Path(base) / "npu-emulators"
    return Path(tempfile.gettempdir()) / ("npu-emulators-%s" % getattr(os, "getuid", lambda: "")())


def register(port, core, board):
    """Note a running emulator's port; returns the note's path (unregister removes it)."""
    folder = runtime_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    note = folder / ("%d.json" % os.getpid())
    tmp = note.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(port=port, core=core, board=board, pid=os.getpid())))
    os.replace(tmp, note)  # whole or not at all: a reader never sees half a note
    return note


def unregister(note):
    try:
        note.unlink()
    except OSError:
        pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def emulators():
    """[{port, core, board, pid}] of the emulators running now (notes of dead ones are removed)."""
    found = []
    for note in sorted(runtime_dir().glob("*.json")):
        try:
            e = json.loads(note.read_text())
        except (OSError, ValueError):
            continue
        if _alive(e.get("pid", -1)) and os.path.exists(e.get("port", "")):
            found.append(e)
        else:
            unregister(note)  # killed without its cleanup
    return found


def usb_ports():
    """The USB serial ports (those with a VID:PID), as mpremote's `auto` considers."""
    from serial.tools import list_ports
    return sorted(p.device for p in list_ports.comports() if p.vid is not None)


def only_board():
    """The port of the one board found, or NpuError saying there are none or several."""
    ports = usb_ports() + [e["port"] for e in emulators()]
    if len(ports) == 1:
        return ports[0]
    if not ports:
        raise NpuError("no board found (no USB serial port, no `npu emulate` running): connect "
                       "a board or start `npu emulate`, or pass --port PORT / set NPU_PORT")
    raise NpuError("%d boards found (%s): pick one with --port PORT or NPU_PORT"
                   % (len(ports), ", ".join(ports)))
