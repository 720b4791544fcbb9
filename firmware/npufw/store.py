"""Model store on the board's flash: one file per model, installed atomically.

A flash goes to NAME.part; only after size and SHA-256 check out is it renamed
to NAME.npb, so the old model stays until the new one is whole.
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


class Store:
    def __init__(self, root, capacity):
        self.root = root
        self.capacity = capacity
        if not _exists(root):
            os.mkdir(root)

    def path(self, name, ext=".npb"):
        return self.root + "/" + name + ext

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
            os.remove(part)
        return open(part, "wb")

    def commit(self, name):
        final = self.path(name)
        try:
            os.rename(self.path(name, ".part"), final)
        except OSError:  # some board filesystems refuse to rename over a file
            os.remove(final)
            os.rename(self.path(name, ".part"), final)

    def discard(self, name):
        if _exists(self.path(name, ".part")):
            os.remove(self.path(name, ".part"))
