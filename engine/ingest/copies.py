"""What a tail looks up to tell a new file from a copy of one it follows (copytruncate rotation).

`CopyIndex` keeps, for every followed file, its fingerprint (the hash of its first bytes), whether
it is held as a possible copy, whether it may hold more than its fingerprint covers, and its
contents before truncations; `TailSource._classify` asks it where a new file's first bytes came from.
"""
from __future__ import annotations

from collections import Counter
from typing import Callable

from .identity import Fingerprint, Heads, digest
from .tailfile import Previous, TailFile


class CopyIndex:
    def __init__(self, files: dict[str, TailFile], csv: bool):
        self.files = files                  # the tail's own map of followed files, by key
        self.lines = 2 if csv else 1        # newlines a head needs to hold one whole data line
        self.held: set[str] = set()         # files held as (possible) copies: looked at on every call
        self.heads = Heads()                # fingerprints of the files not held
        self.live = Heads()                 # those short of FINGERPRINT whose file may hold more (open, or grown)
        self.previous: dict[tuple[int, str], list[tuple[str, Previous]]] = {}   # contents before truncations
        self.previous_sizes: Counter[int] = Counter()
        self.indexed: dict[str, tuple] = {}

    def index(self, f: TailFile) -> None:
        """Keep the lookups in step with `f`: its fingerprint, its contents before truncations,
        whether it is held, whether it may hold more than its fingerprint."""
        held = f.copy_of is not None
        live = not held and f.fp.head is not None and not f.fp.full and (f.fd >= 0 or f.size > f.fp.size)
        record = (f.fp, held, live, tuple(f.previous))
        if self.indexed.get(f.key) == record:
            return
        self.unindex(f.key)
        self.indexed[f.key] = record
        if held:
            self.held.add(f.key)
        elif f.fp.head is not None:
            self.heads.add(f.fp.head, f.key)
            if live:
                self.live.add(f.fp.head, f.key)
        for p in record[3]:
            self.previous.setdefault((p.fp.size, p.fp.hash), []).append((f.key, p))
            self.previous_sizes[p.fp.size] += 1

    def unindex(self, key: str) -> None:
        record = self.indexed.pop(key, None)
        if record is None:
            return
        fp, held, live, previous = record
        self.held.discard(key)
        if not held and fp.head is not None:
            self.heads.remove(fp.head, key)
            if live:
                self.live.remove(fp.head, key)
        for p in previous:
            entries = self.previous[(p.fp.size, p.fp.hash)]
            entries.remove((key, p))
            if not entries:
                del self.previous[(p.fp.size, p.fp.hash)]
            self.previous_sizes[p.fp.size] -= 1
            if not self.previous_sizes[p.fp.size]:
                del self.previous_sizes[p.fp.size]

    def has_a_line(self, data: bytes) -> bool:
        return data.count(b"\n") >= self.lines

    def covers_a_line(self, fp: Fingerprint, head: bytes) -> bool:
        """A fingerprint identifies content only when it covers at least one whole data line."""
        return self.has_a_line(head[:fp.size])

    def truncated(self, f: TailFile, head: bytes) -> tuple[TailFile, Previous] | None:
        """Another file's content before a truncation, covering a line, that `head` starts with."""
        for size in sorted(self.previous_sizes, reverse=True):
            if size > len(head) or not self.has_a_line(head[:size]):
                continue
            for key, p in self.previous.get((size, digest(head[:size])), ()):
                if key != f.key and p.fp.matches(head):
                    return self.files[key], p
        return None

    def original(self, head: bytes, use: Callable[[TailFile], bool]) -> tuple[TailFile | None, bool]:
        """A followed file (not held) that `head` is a whole copy of (True), or may be the start of
        a copy of. `use(file)` gives the file a descriptor, False when it cannot be read."""
        for key in self.heads.starting(head):
            other = self.files[key]
            if other.copy_of is None and other.fp.matches(head):     # the longest: if it covers no line, none does
                if self.covers_a_line(other.fp, head):
                    return other, True
                break
        now_copy = None
        for key in list(self.live.starting(head)):
            other = self.files.get(key)
            if other is not None and other.copy_of is None and _copy_of_now(other, head, use):
                if self.has_a_line(head):
                    return other, True
                now_copy = other
                break
        for key in self.heads.extending(head):
            other = self.files[key]
            if other.copy_of is None and other.fp.extends(head):
                return other, False
        return now_copy, False


def _copy_of_now(other: TailFile, head: bytes, use: Callable[[TailFile], bool]) -> bool:
    """True when `head` is the start of what `other` holds now, and shows more of it than our
    fingerprint does: a copy made before we read a row of `other` (its fingerprint is then
    the header at most, so only its present bytes can tell a copy from a new file)."""
    if other.fp.full or len(head) <= other.fp.size or not other.fp.matches(head) or not use(other):
        return False
    try:
        return other.head().startswith(head)
    except OSError:
        return False
