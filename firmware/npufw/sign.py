"""Blob signatures: HMAC-SHA256 by hand, as MicroPython has hashlib but no hmac module.

A keyed board installs a blob only when FLASH_BEGIN carries
mac = HMAC-SHA256(device key, TAG + blob_id + name) (docs/protocol.md, "Signing").
"""
import hashlib

TAG = b"npu-blob"
_BLOCK = 64  # SHA-256 block size


def hmac_sha256(key, msg):
    """HMAC-SHA256 (RFC 2104), the same bytes as Python's hmac.new(key, msg, "sha256")."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = bytes(key) + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def blob_mac(key, blob_id, name):
    """The FLASH_BEGIN signature of blob `blob_id` installed as `name` (a str)."""
    # blob_id is always 32 bytes and the name comes last: the concatenation is unambiguous
    return hmac_sha256(key, TAG + bytes(blob_id) + name.encode("utf-8"))


def equal(a, b):
    """Compare two MACs in time that does not depend on where they differ."""
    if len(a) != len(b):
        return False
    diff = 0
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0
