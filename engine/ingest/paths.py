"""Confine paths a browser user gives to the configured data roots.

The dashboard passes the roots (RIVULET_DATA_ROOTS, os.pathsep-separated,
default: the data folder); the command line is a trusted user and passes
none. A relative path is taken inside the first root. Refused: a path whose
`..` climbs out of the roots, an absolute path outside them, and a path whose
symlinks resolve outside them. Files a glob finds later are checked again
(`inside`), so a symlink planted in a watched folder cannot lead out either.
"""
from __future__ import annotations

import glob
import os

from ..errors import UserError


def data_roots(default: str) -> list[str]:
    """The roots from RIVULET_DATA_ROOTS, or [default]."""
    text = os.environ.get("RIVULET_DATA_ROOTS", "")
    roots = [r for r in text.split(os.pathsep) if r.strip()] or [default]
    return [os.path.realpath(r) for r in roots]


def inside(path: str, roots: list[str]) -> bool:
    """True when `path`, with every symlink resolved, lies in one of the roots."""
    real = os.path.realpath(path)
    for root in roots:
        root = os.path.realpath(root)
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


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
    if not any(full == r or full.startswith(r.rstrip(os.sep) + os.sep) for r in real_roots):
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
