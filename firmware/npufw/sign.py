"""Blob signatures and proofs of the key: HMAC-SHA256 by hand, as MicroPython has hashlib
but no hmac module.

A keyed board installs a blob only when FLASH_BEGIN carries mac = HMAC-SHA256(device key,
TAG + blob_id + version u32 + flags u8 [+ nonce for a downgrade] + name), and takes RM,
REPL and KEY only with proof = HMAC-SHA256(key, AUTH_TAG + nonce + type + payload) over
the nonce it last issued (docs/protocol.md, "Signing").
"""
import hashlib
import struct

TAG = b"npu-blob"
AUTH_TAG = b"npu-auth"
DOWNGRADE = 1  # FLASH_BEGIN flags: install over a newer version (signed with a fresh nonce)
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


def blob_mac(key, blob_id, name, version, flags, nonce=b""):
    """The FLASH_BEGIN signature of blob `blob_id` installed as `name` (a str) as `version`."""
    # fixed-size fields first and the name last: the concatenation is unambiguous
    return hmac_sha256(key, TAG + bytes(blob_id) + struct.pack("<IB", version, flags)
                       + bytes(nonce) + name.encode("utf-8"))


def proof(key, nonce, ftype, body):
    """Proof of the key for request `ftype` with payload `body`, over the board's nonce."""
    return hmac_sha256(key, AUTH_TAG + bytes(nonce) + bytes((ftype,)) + bytes(body))


def equal(a, b):
    """Compare two MACs in time that does not depend on where they differ."""
    if len(a) != len(b):
        return False
    diff = 0
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0
