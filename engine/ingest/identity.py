"""Who a tailed file is: device + inode + a fingerprint of its first bytes.

A path says nothing about identity: rotation renames files and a deleted
file's inode can be handed to a new one. The fingerprint (a hash of the first
FINGERPRINT bytes, or of all of them while the file is shorter, re-hashed as
it grows) tells a reused inode from the file we read, and recognises a copy
(copytruncate) of a file we follow.
"""
from __future__ import annotations

import bisect
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

FINGERPRINT = 1024        # bytes hashed
LAST = "\U0010ffff"       # sorts after every key ("tail:...")


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

    def known(self, head: bytes) -> "Fingerprint":
        """This fingerprint with its bytes, from a head it matches (a stored one has only its hash)."""
        return self if self.head is not None else Fingerprint(self.size, self.hash, head[:self.size])


class Heads:
    """Files' first bytes in byte order: which of them start a given head, and which a head starts.

    Finding a copy's original among many followed files is then a few bisections instead of a
    comparison with every file (a folder of 100,000 files made that quadratic).
    """

    def __init__(self):
        self.items: list[tuple[bytes, str]] = []    # (bytes, key), sorted

    def __len__(self) -> int:
        return len(self.items)

    def add(self, head: bytes, key: str) -> None:
        bisect.insort(self.items, (head, key))

    def remove(self, head: bytes, key: str) -> None:
        i = bisect.bisect_left(self.items, (head, key))
        if i < len(self.items) and self.items[i] == (head, key):
            del self.items[i]

    def starting(self, head: bytes) -> Iterator[str]:
        """Keys whose bytes are a prefix of `head` (or all of it), longest first (callers check each:
        one changed meanwhile may be skipped or repeated)."""
        q = head
        while self.items:
            i = bisect.bisect_right(self.items, (q, LAST)) - 1
            if i < 0:
                return
            data = self.items[i][0]
            if q.startswith(data):
                j = bisect.bisect_left(self.items, (data,))
                while j < len(self.items) and self.items[j][0] == data:    # bounds checked again: the
                    yield self.items[j][1]                                  # caller may change the index
                    j += 1
                if not data:
                    return
                q = data[:-1]
            else:                  # no entry longer than the common prefix can start q
                q = q[:len(os.path.commonprefix([q, data]))]

    def extending(self, head: bytes) -> Iterator[str]:
        """Keys whose bytes start with `head` and go on past it."""
        i = bisect.bisect_left(self.items, (head + b"\x00",))
        while i < len(self.items) and self.items[i][0].startswith(head):
            yield self.items[i][1]
            i += 1
