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

on_write, when given, is called after every flash write (create, data, rename,
remove) with what was written: the emulator uses it to cut power at a chosen write.
"""
import os

_MAX_NAME = 32


def valid_name(name):
    if not 0 < len(name) <= _MAX_NAME:
        return False
    for c in name:
        if not (c.isalpha() or c.isdigit() or c in "_-."):
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
        """Finish what a power cut interrupted: NAME.new replaces NAME.npb, NAME.part goes."""
        for f in os.listdir(self.root):
            if f.endswith(".new"):
                self._rename(self.root + "/" + f, self.path(f[:-4]))
            elif f.endswith(".part"):
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

    def free(self):
        return max(0, self.capacity - self.used())

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def tail(self, name, n):
        with open(self.path(name), "rb") as f:
            f.seek(self.size(name) - n)
            return f.read(n)

    def begin(self, name):
        """Open NAME.part for a new install, dropping any earlier partial one."""
        part = self.path(name, ".part")
        if _exists(part):
            self._remove(part)
        f = open(part, "wb")
        self._wrote("create " + part)
        return _Part(self, f, "write " + part)

    def commit(self, name):
        """Install the verified NAME.part as NAME.npb (see the module docstring)."""
        new = self.path(name, ".new")
        if _exists(new):
            self._remove(new)
        self._rename(self.path(name, ".part"), new)
        self._rename(new, self.path(name))

    def discard(self, name):
        if _exists(self.path(name, ".part")):
            self._remove(self.path(name, ".part"))
