"""Device key files: 32 random bytes as one line of hex, readable by their owner only.

`npu keys provision` gives a board a key (Board.provision_key) and keeps it in such a file;
`npu flash --key FILE` signs blobs with it (docs/protocol.md, "Signing")."""
import os
import secrets

from .errors import NpuError
from .link.codec import KEY_SIZE


def generate():
    return secrets.token_bytes(KEY_SIZE)


def load(path):
    """The key in file `path`, None when no file is given (NpuError naming the file when it
    is not a key file)."""
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            text = f.read(4 * KEY_SIZE)
    except OSError as e:
        raise NpuError("cannot read key file %s: %s" % (path, e.strerror or e)) from e
    try:
        key = bytes.fromhex(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != KEY_SIZE:
        raise NpuError("%s is not a device key file (one line of %d hex digits, as `npu keys "
                       "provision` writes)" % (path, 2 * KEY_SIZE))
    return key


def stage(path, key):
    """Write `key` to a new private file next to `path` and return its name; publish() gives it
    its final name once the board has the key, so no key file names a key no board took."""
    if os.path.exists(path):
        raise NpuError("%s already exists (it may hold a board's key): choose another --out or "
                       "move it away" % path)
    tmp = "%s.tmp%d" % (path, os.getpid())
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key.hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise NpuError("cannot write key file %s: %s" % (tmp, e.strerror or e)) from e
    return tmp


def publish(tmp, path):
    """Rename the staged key file to `path`, never over an existing file."""
    try:
        os.link(tmp, path)
    except OSError as e:
        raise NpuError("cannot create key file %s (%s): the key sent to the board is in %s"
                       % (path, e.strerror or e, tmp)) from e
    os.remove(tmp)
