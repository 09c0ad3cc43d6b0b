"""Confine paths a browser user gives to the configured data roots.

The dashboard passes the roots (RIVULET_DATA_ROOTS, os.pathsep-separated,
default: the data folder); the command line is a trusted user and passes
none. A relative path is taken inside the first root. Refused: a path whose
`..` climbs out of the roots, an absolute path outside them, and a path whose
symlinks resolve outside them. Files a glob finds later are opened with
`open_inside`, which checks the descriptor it returns, not the path: a file
swapped for a symlink between a check and the open cannot lead out either.
"""
from __future__ import annotations

import errno
import glob
import os

from ..errors import UserError

READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK     # a FIFO swapped in does not block the open
NOATIME = getattr(os, "O_NOATIME", 0)    # reads that change no access time raise no inotify event
WALK_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Outside(OSError):
    """The path leads outside the data roots."""

    def __init__(self, path: str):
        super().__init__(errno.EACCES, f"{path} leads outside the data roots; not followed")


def under(path: str, root: str) -> bool:
    """True when `path` is `root` or below it, comparing the strings only."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def data_roots(default: str) -> list[str]:
    """The roots from RIVULET_DATA_ROOTS, or [default]."""
    text = os.environ.get("RIVULET_DATA_ROOTS", "")
    roots = [r for r in text.split(os.pathsep) if r.strip()] or [default]
    return [os.path.realpath(r) for r in roots]


def inside(path: str, roots: list[str]) -> bool:
    """True when `path`, with every symlink resolved, lies in one of the roots."""
    real = os.path.realpath(path)
    return any(under(real, os.path.realpath(root)) for root in roots)


def open_inside(path: str, roots: list[str] | None) -> int:
    """A read-only descriptor of `path`; with roots, only of a file inside them (else `Outside`).

    Each component below the root is opened relative to its folder with O_NOFOLLOW, so a
    symlink swapped in after the path was resolved makes the open fail instead of leading
    out; the descriptor's own path (/proc/self/fd) is then checked before a byte is read.
    """
    if roots is None:
        return _open_file(path, READ_FLAGS)
    real = os.path.realpath(path)
    root = next((r for r in map(os.path.realpath, roots) if under(real, r)), None)
    if root is None:
        raise Outside(path)
    parts = os.path.relpath(real, root).split(os.sep)
    folder = os.open(root, WALK_FLAGS & ~os.O_NOFOLLOW)     # the configured root itself may be a link
    try:
        for part in parts[:-1]:
            inner = os.open(part, WALK_FLAGS, dir_fd=folder)
            os.close(folder)
            folder = inner
        fd = _open_file(parts[-1], READ_FLAGS | os.O_NOFOLLOW, dir_fd=folder)
    finally:
        os.close(folder)
    try:
        where = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:             # no /proc (not Linux): the walk above is the check
        return fd
    if not under(where, root):
        os.close(fd)
        raise Outside(path)
    return fd


def _open_file(path: str, flags: int, dir_fd: int | None = None) -> int:
    """Open without touching the access time when we own the file (the kernel allows no more)."""
    if NOATIME:
        try:
            return os.open(path, flags | NOATIME, dir_fd=dir_fd)
        except PermissionError:
            pass
    return os.open(path, flags, dir_fd=dir_fd)


def fixed_part(pattern: str) -> str:
    """The folder a glob pattern starts from: its longest prefix without wildcards."""
    parts = pattern.split(os.sep)
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            return os.sep.join(parts[:i]) or os.sep
    return pattern


def confine(pattern: str, roots: list[str] | None) -> str:
    """The absolute form of a file, folder or glob pattern; with roots, refuse what leaves them."""
    if not pattern or not pattern.strip():
        raise UserError("give a file, folder or glob pattern to follow")
    no_nul(pattern)
    if roots is None:
        return os.path.abspath(os.path.expanduser(pattern))
    if not roots:
        raise UserError("no data roots are configured (RIVULET_DATA_ROOTS); following files is disabled")
    real_roots = [os.path.realpath(r) for r in roots]
    full = os.path.normpath(pattern if os.path.isabs(pattern) else os.path.join(real_roots[0], pattern))
    allowed = ", ".join(real_roots)
    if not any(under(full, r) for r in real_roots):
        if ".." in pattern.split(os.sep):
            raise UserError(f"{pattern!r} climbs out of the data roots with '..'; allowed: {allowed}")
        raise UserError(f"{pattern!r} is outside the data roots; allowed: {allowed}")
    base = fixed_part(full)
    while not os.path.lexists(base) and base != os.path.dirname(base):
        base = os.path.dirname(base)
    if not inside(base, real_roots):
        raise UserError(f"{pattern!r} leads outside the data roots through a symlink; allowed: {allowed}")
    return full


def no_nul(path: str) -> None:
    """Refuse a path with a NUL byte: no file can have one, and os calls would fail on it."""
    if "\x00" in path:
        raise UserError(f"the path {path!r} contains a NUL byte; no file can be named so")


def regular_file(path: str) -> str:
    """`path` when it names a regular file; else say what it is."""
    no_nul(path)
    if os.path.isfile(path):
        return path
    if not os.path.exists(path):
        raise UserError(f"no such file: {path}")
    what = "a folder" if os.path.isdir(path) else "a device, pipe or socket"
    raise UserError(f"{path} is {what}, not a regular file: give a CSV file")
