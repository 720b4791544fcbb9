"""Files the CLI writes: checked before the work that fills them, written whole or not at all."""
import os

from .errors import NpuError


def check_writable(path, what):
    """Refuse, before any work, a path whose directory is missing or not writable: a run's
    result is never lost to a typo in --output."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise NpuError("cannot write %s %s: no directory %s; create it or pick another path"
                       % (what, path, folder))
    if not os.access(folder, os.W_OK):
        raise NpuError("cannot write %s %s: directory %s is not writable; pick another path"
                       % (what, path, folder))


def write_atomic(path, data):
    """Write to a temporary file and rename: a failed write never leaves half a file."""
    tmp = "%s.tmp%d" % (path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise NpuError("cannot write %s: %s" % (path, e.strerror or e)) from e
