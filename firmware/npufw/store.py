"""Model store on the board's flash: one file per model, installed atomically.

An install writes NAME.part, which is never trusted. Once the server has checked
size and SHA-256, commit() renames it to NAME.new (complete and verified) and
then NAME.new over NAME.npb. Where the filesystem renames over a file (littlefs,
POSIX) that last step is atomic. Where it refuses (FAT) it is remove NAME.npb,
then rename: a power cut between the two leaves only NAME.new, and that is why
the verified copy has its own name. At start-up recover() finishes any NAME.new
(the new model wins; it was verified) and deletes any NAME.part (an interrupted
transfer; the old model stays). After any cut the board holds the old model or
the new one, whole.

Two slots: when NAME.npb already exists, commit() first renames it to NAME.old (the
previous version) and then NAME.new to NAME.npb. The server calls confirm() once the new
model has loaded, which drops NAME.old; if its first load fails, rollback() renames
NAME.old back over NAME.npb. While NAME.old exists, NAME.npb has never loaded; installing
again then replaces NAME.npb and keeps NAME.old (the last version that loaded).
recover() finishes an interrupted commit the same way, and an interrupted rollback (FAT:
NAME.npb removed, NAME.old not yet renamed) by renaming NAME.old to NAME.npb.

Resume: begin(name, meta) first writes NAME.sid, a small sidecar naming the transfer
(the blob's size and id), then creates NAME.part. recover() keeps a NAME.part whose
sidecar survived, so resume(name, meta) can reopen it and a host continues from its
length: every byte in it arrived in a CRC-checked frame, and FLASH_END checks the
whole blob anyway. A sidecar without its NAME.part, or a NAME.part without a sidecar,
is deleted at start-up. commit() removes the sidecar last.

The device key (KEY request, docs/protocol.md) lives in KEY_FILE, written the same
whole-or-nothing way: KEY_FILE.tmp (never trusted), renamed to KEY_FILE.ok (complete), then
renamed over KEY_FILE; recover() finishes a .ok and deletes a .tmp. After any cut the board
holds the old key or the new one. LOCK_FILE, an empty file, says the board never hands its
REPL over (KEY with LOCK); it outlives the key and nothing removes it. None of these names
can be a model's (they have no model extension).

on_write, when given, is called after every flash write (create, data, rename,
remove) with what was written: the emulator uses it to cut power at a chosen write.
"""
import os
import struct

from .opcodes import MAX_NAME

# spelled out, not str.isalpha(): CPython's takes "é", MicroPython's does not, and a name must
# mean the same on every core (and be a plain file name on any board's filesystem)
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."
KEY_FILE = "device.key"
LOCK_FILE = "device.lock"


def valid_name(name):
    if not 0 < len(name) <= MAX_NAME:
        return False
    for c in name:
        if c not in _NAME_CHARS:
            return False
    return name[0] != "."


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class _Part:
    """NAME.part being written: each write reaches the flash before the next."""

    def __init__(self, store, f, label):
        self.store = store
        self.f = f
        self.label = label

    def write(self, data):
        self.f.write(data)
        self.f.flush()
        self.store._wrote(self.label)

    def close(self):
        self.f.close()


class Store:
    def __init__(self, root, capacity, on_write=None):
        self.root = root
        self.capacity = capacity
        self.on_write = on_write
        if not _exists(root):
            os.mkdir(root)
            self._wrote("mkdir " + root)
        self.recover()

    def _wrote(self, what):
        if self.on_write is not None:
            self.on_write(what)

    def _remove(self, path):
        os.remove(path)
        self._wrote("remove " + path)

    def _rename(self, src, dst):
        """Rename src over dst; remove dst first where the filesystem refuses to replace it."""
        try:
            os.rename(src, dst)
        except OSError:
            if not _exists(dst):
                raise
            self._remove(dst)
            os.rename(src, dst)
        self._wrote("rename %s -> %s" % (src, dst))

    def path(self, name, ext=".npb"):
        return self.root + "/" + name + ext

    def recover(self):
        """Finish what a power cut interrupted: NAME.new replaces NAME.npb; NAME.part stays
        only with its sidecar (a transfer to resume); stray sidecars go."""
        files = os.listdir(self.root)
        for f in files:
            if f.endswith(".new"):
                self._install(f[:-4])
        files = os.listdir(self.root)
        for f in files:
            if f.endswith(".old") and f[:-4] + ".npb" not in files:
                self._rename(self.root + "/" + f, self.path(f[:-4]))
        files = os.listdir(self.root)
        if KEY_FILE + ".ok" in files:
            self._rename(self._key_path(".ok"), self._key_path())
        if KEY_FILE + ".tmp" in files:
            self._remove(self._key_path(".tmp"))
        files = os.listdir(self.root)
        for f in files:
            if f.endswith(".part") and f[:-5] + ".sid" not in files:
                self._remove(self.root + "/" + f)
            elif f.endswith(".sid") and f[:-4] + ".part" not in files:
                self._remove(self.root + "/" + f)

    def names(self):
        return sorted(f[:-4] for f in os.listdir(self.root) if f.endswith(".npb"))

    def size(self, name):
        return os.stat(self.path(name))[6]

    def used(self):
        total = 0
        for f in os.listdir(self.root):
            total += os.stat(self.root + "/" + f)[6]
        return total

    def free(self, reclaimable=False):
        """Bytes free; with `reclaimable`, counting unfinished transfers (dropped when needed)."""
        used = self.used()
        if reclaimable:
            for f in os.listdir(self.root):
                if f.endswith(".part") or f.endswith(".sid"):
                    used -= os.stat(self.root + "/" + f)[6]
        return max(0, self.capacity - used)

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def tail(self, name, n, ext=".npb"):
        path = self.path(name, ext)
        with open(path, "rb") as f:
            f.seek(os.stat(path)[6] - n)
            return f.read(n)

    def begin(self, name, meta=None, size=0):
        """Open NAME.part for a new install of `size` bytes, dropping any earlier partial one.
        `meta` (bytes), when given, is kept in the sidecar NAME.sid for resume()."""
        self.discard(name)
        part = self.path(name, ".part")
        if meta is not None:
            with open(self.path(name, ".sid"), "wb") as f:
                f.write(meta)
            self._wrote("create " + self.path(name, ".sid"))
        f = open(part, "wb")
        self._wrote("create " + part)
        return _Part(self, f, "write " + part)

    def resume(self, name, meta):
        """(NAME.part reopened for appending, its length) when its sidecar holds `meta`, else None."""
        part = self.path(name, ".part")
        try:
            with open(self.path(name, ".sid"), "rb") as f:
                if f.read() != meta:
                    return None
            size = os.stat(part)[6]
        except OSError:
            return None
        return _Part(self, open(part, "ab"), "write " + part), size

    def commit(self, name):
        """Install the verified NAME.part as NAME.npb, the previous version kept as NAME.old
        until confirm() (see the module docstring)."""
        new = self.path(name, ".new")
        if _exists(new):
            self._remove(new)
        self._rename(self.path(name, ".part"), new)
        self._install(name)
        if _exists(self.path(name, ".sid")):
            self._remove(self.path(name, ".sid"))

    def _install(self, name):
        """NAME.new -> NAME.npb; a NAME.npb that has loaded becomes NAME.old first."""
        if _exists(self.path(name)) and not _exists(self.path(name, ".old")):
            self._rename(self.path(name), self.path(name, ".old"))
        self._rename(self.path(name, ".new"), self.path(name))

    def unconfirmed(self, name):
        """True while NAME.npb has not loaded since it was installed over an older version."""
        return _exists(self.path(name, ".old"))

    def confirm(self, name):
        """NAME.npb has loaded: drop the previous version."""
        if _exists(self.path(name, ".old")):
            self._remove(self.path(name, ".old"))

    def rollback(self, name):
        """NAME.npb failed its first load: put the previous version back. False if there is
        none (the model was new, or already confirmed)."""
        if not _exists(self.path(name, ".old")):
            return False
        self._rename(self.path(name, ".old"), self.path(name))
        return True

    def discard(self, name):
        """Drop an unfinished transfer of `name` (its NAME.part and sidecar)."""
        for ext in (".part", ".sid"):
            if _exists(self.path(name, ext)):
                self._remove(self.path(name, ext))

    def remove(self, name):
        """Delete model `name` and any unfinished transfer of it; False if there was none."""
        found = _exists(self.path(name)) or _exists(self.path(name, ".part"))
        self.discard(name)
        for ext in (".old", ".npb"):
            if _exists(self.path(name, ext)):
                self._remove(self.path(name, ext))
        return found

    def partials(self):
        return sorted(f[:-4] for f in os.listdir(self.root) if f.endswith(".sid"))

    # --- versions of signed models (anti-rollback on a keyed board) -----------------

    def version(self, name):
        """The version of model `name` last installed signed, or -1."""
        try:
            with open(self.path(name, ".ver"), "rb") as f:
                data = f.read(4)
        except OSError:
            return -1
        return struct.unpack("<I", data)[0] if len(data) == 4 else -1

    def set_version(self, name, version):
        """Keep `version` for model `name`, whole-or-nothing as the key."""
        with open(self.path(name, ".vtm"), "wb") as f:
            f.write(struct.pack("<I", version))
        self._wrote("create " + self.path(name, ".vtm"))
        self._rename(self.path(name, ".vtm"), self.path(name, ".ver"))

    # --- the device key ------------------------------------------------------------

    def _key_path(self, ext=""):
        return self.root + "/" + KEY_FILE + ext

    def key(self):
        """The device key (bytes), or None when the board has none."""
        try:
            with open(self._key_path(), "rb") as f:
                return f.read()
        except OSError:
            return None

    def set_key(self, key):
        """Store `key` whole-or-nothing (see the module docstring); None removes it."""
        if key is None:
            if _exists(self._key_path()):
                self._remove(self._key_path())
            return
        with open(self._key_path(".tmp"), "wb") as f:
            f.write(key)
        self._wrote("create " + self._key_path(".tmp"))
        self._rename(self._key_path(".tmp"), self._key_path(".ok"))
        self._rename(self._key_path(".ok"), self._key_path())

    def locked(self):
        return _exists(self.root + "/" + LOCK_FILE)

    def lock(self):
        """Lock the board for good: one create, so after a power cut it is locked or not."""
        if not self.locked():
            open(self.root + "/" + LOCK_FILE, "wb").close()
            self._wrote("create " + self.root + "/" + LOCK_FILE)
