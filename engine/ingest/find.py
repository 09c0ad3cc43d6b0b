"""The files a tail pattern names right now: one file, a folder's files, or a glob (`**` too).

Globs follow the glob module's rules (a wildcard does not match a leading dot; `**` spans
folders), but the walk is ours so that a crafted tree cannot stall it: each folder is read
once per pattern position, known by (device, inode), so a symlink loop (`a/b -> ..`) ends;
a symlinked folder is entered only when it resolves inside `limits` (the data roots, or the
pattern's own base folder); and `halt` is called between entries, so a stop request ends
a walk of a huge tree at once.
"""
from __future__ import annotations

import fnmatch
import glob
import os
import stat
from collections.abc import Callable, Iterator

from .paths import fixed_part, under


def files(pattern: str, limits: list[str] | None, halt: Callable[[], None]) -> Iterator[tuple[str, os.stat_result]]:
    """(path, stat following a file symlink) of each regular file the pattern names."""
    if os.path.isdir(pattern):
        for path in _listing(pattern, halt):
            st = _stat(path)
            if st is not None and stat.S_ISREG(st.st_mode):
                yield path, st
        return
    if not glob.has_magic(pattern):
        st = _stat(pattern)
        if st is not None and stat.S_ISREG(st.st_mode):
            yield pattern, st
        return
    base = fixed_part(pattern)
    parts = [p for p in os.path.relpath(pattern, base).split(os.sep) if p]
    if limits is None:
        limits = [os.path.realpath(base)]
    yield from _walk(base, parts, limits, halt)


def entries(folder: str, halt: Callable[[], None]) -> list[os.DirEntry]:
    """The folder's entries ([] when it cannot be read), calling `halt` between them."""
    try:
        with os.scandir(folder) as it:
            found = []
            for e in it:
                halt()
                found.append(e)
            return found
    except OSError:
        return []


def _listing(folder: str, halt: Callable[[], None]) -> list[str]:
    """The folder's visible entries (not dot files: the writer's manifest, editors' swap files)."""
    return sorted(e.path for e in entries(folder, halt) if not e.name.startswith("."))


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _walk(base: str, parts: list[str], limits: list[str], halt) -> Iterator[tuple[str, os.stat_result]]:
    seen: set[tuple[int, int, int]] = set()        # (device, inode, pattern position) of folders entered
    todo = [(base, 0)]
    while todo:
        folder, i = todo.pop()
        st = _stat(folder)
        if st is None or not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino, i) in seen:
            continue
        seen.add((st.st_dev, st.st_ino, i))
        part, last = parts[i], i == len(parts) - 1
        if part == "**":
            if not last:
                todo.append((folder, i + 1))       # zero folders
            for path, name, is_dir in _entries(folder, limits, halt):
                if name.startswith("."):
                    continue
                if is_dir:
                    todo.append((path, i))
                elif last:
                    yield from _regular(path)
            continue
        if not glob.has_magic(part):
            path = os.path.join(folder, part)
            if last:
                yield from _regular(path)
            elif not os.path.islink(path) or _allowed(path, limits):
                todo.append((path, i + 1))
            continue
        hidden = part.startswith(".")
        for path, name, is_dir in _entries(folder, limits, halt):
            if (hidden or not name.startswith(".")) and fnmatch.fnmatchcase(name, part):
                if last:
                    yield from _regular(path)
                elif is_dir:
                    todo.append((path, i + 1))


def _entries(folder: str, limits: list[str], halt) -> Iterator[tuple[str, str, bool]]:
    """(path, name, is a folder we may enter) of each entry of `folder`."""
    for e in entries(folder, halt):
        try:
            is_dir = e.is_dir(follow_symlinks=False) or e.is_symlink() and e.is_dir() and _allowed(e.path, limits)
        except OSError:
            continue
        yield e.path, e.name, is_dir


def _allowed(path: str, limits: list[str]) -> bool:
    """True when the symlinked folder `path` resolves inside one of the limits."""
    real = os.path.realpath(path)
    return any(under(real, limit) for limit in limits)


def _regular(path: str) -> Iterator[tuple[str, os.stat_result]]:
    st = _stat(path)
    if st is not None and stat.S_ISREG(st.st_mode):
        yield path, st
