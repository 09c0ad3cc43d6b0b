"""Who a tailed file is: device + inode + a fingerprint of its first bytes.

A path says nothing about identity: rotation renames files and a deleted
file's inode can be handed to a new one. The fingerprint (a hash of the first
FINGERPRINT bytes, or of all of them while the file is shorter, re-hashed as
it grows) tells a reused inode from the file we read, and recognises a copy
(copytruncate) of a file we follow.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

FINGERPRINT = 1024        # bytes hashed


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def key_of(st: os.stat_result) -> str:
    """The offsets-table key of a file: device and inode (the fingerprint travels in the position)."""
    return f"tail:{st.st_dev}:{st.st_ino}"


@dataclass(frozen=True)
class Fingerprint:
    size: int                 # bytes covered
    hash: str
    head: bytes | None = None  # the covered bytes while in memory: a copy still being written is a prefix

    @classmethod
    def of(cls, head: bytes) -> "Fingerprint":
        head = head[:FINGERPRINT]
        return cls(len(head), digest(head), head)

    @property
    def full(self) -> bool:
        return self.size >= FINGERPRINT

    def matches(self, head: bytes) -> bool:
        """True when `head` (a file's first bytes) starts with the bytes this fingerprint covers."""
        if len(head) < self.size:
            return False
        if self.head is not None:         # in memory: compare bytes, cheaper than hashing
            return head.startswith(self.head)
        return digest(head[:self.size]) == self.hash

    def extends(self, head: bytes) -> bool:
        """True when `head` is shorter than the covered bytes and equal to their start."""
        return self.head is not None and len(head) < self.size and self.head.startswith(head)

    def to_json(self) -> dict:
        return {"fp_size": self.size, "fp": self.hash}

    @classmethod
    def from_json(cls, d: dict) -> "Fingerprint":
        return cls(int(d.get("fp_size", 0)), d.get("fp", digest(b"")))
