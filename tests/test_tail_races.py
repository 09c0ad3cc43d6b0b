"""A copytruncate rotation, or a swap of a file for a symlink out of the data roots, landing between
any two file-system calls of the tailer.

The tailer's calls (stat, open, fstat, pread) go through a counting stand-in for `os`, and the
rotation (copy beside the file, truncate it, write new rows) runs just before its k-th call, for
every k of one batch. With the copy visible every row must be read exactly once; with it out of
sight only the end of the truncated generation may be lost. Nothing here depends on timing: the
interleavings a loaded machine produces by chance are enumerated.
"""
import os
import shutil
import time
import types

import numpy as np
import pytest

from engine.ingest import paths as paths_module
from engine.ingest import tail as tail_module
from engine.ingest import tailfile as tailfile_module
from engine.ingest.tail import TailSource

HOOKED = ("stat", "open", "fstat", "pread")
RESOLVING = ("lstat", "readlink", "path.realpath")      # what a symlink check calls besides


def rows(start, n, header=True):
    return (b"id,x\n" if header else b"") + "".join(f"{i},{i % 97 * 0.5}\n" for i in range(start, start + n)).encode()


class Interleave:
    """Runs `steps` one at a time just before the tailer's file-system calls number at, at+stride, ..."""

    def __init__(self, names=HOOKED):
        self.calls, self.due, self.stride, self.steps = 0, 0, 1, []
        self.os = types.ModuleType("os")
        self.os.__dict__.update(os.__dict__)
        self.os.path = types.ModuleType("os.path")
        self.os.path.__dict__.update(os.path.__dict__)
        for name in names:
            owner, _, attr = ("os." + name).rpartition(".")
            target = self.os.path if owner == "os.path" else self.os
            setattr(target, attr, self._wrap(getattr(os.path if owner == "os.path" else os, attr)))

    def install(self, monkeypatch):
        for module in (tail_module, tailfile_module, paths_module):
            monkeypatch.setattr(module, "os", self.os)

    def arm(self, steps, at, stride):
        self.calls, self.due, self.stride, self.steps = 0, at, stride, list(steps)

    def _wrap(self, real):
        def call(*args, **kw):
            self.calls += 1
            if self.steps and self.calls == self.due:
                self.steps.pop(0)()
                self.due += self.stride
            return real(*args, **kw)
        return call


def copytruncate(path, copy, new_rows, staged):
    """The steps of one rotation. Staged: the copy is seen empty, then with part of its first
    bytes, and the original is seen empty, then with part of its new rows."""

    def copy_to(n):
        def step():
            with open(path, "rb") as src, open(copy, "ab") as dst:
                dst.write(src.read()[os.path.getsize(copy):n])
        return step

    def truncate():
        with open(path, "r+b") as f:
            f.truncate(0)

    def append(data):
        def step():
            with open(path, "ab") as f:
                f.write(data)
        return step

    if not staged:
        return [lambda: (shutil.copyfile(path, copy), truncate(), append(new_rows)())]
    return [copy_to(0), copy_to(3), copy_to(700), copy_to(None), truncate, append(new_rows[:40]), append(new_rows[40:])]


def drain(source, ids, hook):
    """Batches until the rotation is done and five scans in a row bring nothing. Counted in scans, not
    calls: on a loaded machine a slow scan makes the next one wait (SCAN_SHARE), and calls in between
    see no new file."""
    quiet, scanned, deadline = 0, source.last_scan, time.monotonic() + 60
    while time.monotonic() < deadline:
        b = source.next_batch()
        if b is not None and b.table.num_rows:
            ids.append(b.table.column("id").to_numpy(zero_copy_only=False))
            quiet = 0
        elif not hook.steps and source.last_scan != scanned:
            scanned, quiet = source.last_scan, quiet + 1
            if quiet == 5:
                return
        else:
            time.sleep(0.002)
    raise AssertionError("the source did not settle")


def rotate_at(tmp_path, hook, at, read_first, unread, new, staged, stride, copy_name="app.csv.1"):
    """Tail app.csv, read `read_first` rows, append `unread` more, then rotate (to `new` rows) with
    the first step just before the tailer's `at`-th call; the ids read, and whether it landed in that batch."""
    path = str(tmp_path / f"app-{at}" / "app.csv")
    copy = os.path.join(os.path.dirname(path), copy_name)
    os.mkdir(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(rows(0, read_first))
    source = TailSource(path, rescan=0, rotate_wait=60)      # rescan=0: every batch scans; nothing times out
    ids = []
    try:
        drain(source, ids, hook)
        assert sum(map(len, ids)) == read_first
        with open(path, "ab") as f:
            f.write(rows(read_first, unread, header=False))
        hook.arm(copytruncate(path, copy, rows(read_first + unread, new), staged), at, stride)
        b = source.next_batch()
        if b is not None and b.table.num_rows:
            ids.append(b.table.column("id").to_numpy(zero_copy_only=False))
        landed = hook.calls >= at
        drain(source, ids, hook)
    finally:
        source.close()
    return np.concatenate(ids), landed


def each_call(tmp_path, monkeypatch, check, **kw):
    """Rotate before call 1, 2, ... of one batch until the rotation lands after the batch; `check(ids, at)`."""
    hook = Interleave()
    hook.install(monkeypatch)
    at = 1
    while True:
        ids, landed = rotate_at(tmp_path, hook, at, **kw)
        assert not np.isnan(ids.astype(float)).any(), f"rotation before call {at}: a row read from the middle of a line"
        check(ids.astype(np.int64), at)
        if not landed:
            return at
        at += 1


@pytest.mark.parametrize("read_first", [300, 50, 0], ids=["fingerprint-full", "fingerprint-short", "header-only"])
@pytest.mark.parametrize("staged,stride", [(False, 1), (True, 1), (True, 2), (True, 3), (True, 5)],
                         ids=["copy-at-once", "staged", "staged-2", "staged-3", "staged-5"])
def test_a_copytruncate_between_any_two_calls_reads_each_row_once(tmp_path, monkeypatch, read_first, staged, stride):
    unread, new = 300, 400

    def check(ids, at):
        doubled, lost = len(ids) - len(np.unique(ids)), len(np.setdiff1d(np.arange(read_first + unread + new), ids))
        assert (doubled, lost) == (0, 0), f"rotation before call {at}: {doubled} rows doubled, {lost} lost"

    calls = each_call(tmp_path, monkeypatch, check, read_first=read_first, unread=unread, new=new,
                      staged=staged, stride=stride)
    assert calls > 5          # the batch made several calls, each one tried


@pytest.mark.parametrize("read_first", [300, 50, 0], ids=["fingerprint-full", "fingerprint-short", "header-only"])
def test_a_copytruncate_with_the_copy_out_of_sight_loses_only_the_unread_end(tmp_path, monkeypatch, read_first):
    """The documented bound: without the copy, the rows lost are the end of the truncated generation."""
    unread, new = 300, 400

    def check(ids, at):
        assert len(ids) == len(np.unique(ids)), f"rotation before call {at}: rows doubled"
        lost = np.setdiff1d(np.arange(read_first + unread + new), ids)
        end = read_first + unread
        assert np.array_equal(lost, np.arange(end - len(lost), end)), f"rotation before call {at}: lost {lost[:5]}..."

    each_call(tmp_path, monkeypatch, check, read_first=read_first, unread=unread, new=new, staged=False, stride=1,
              copy_name="archive-1.txt")


@pytest.mark.parametrize("start", ["file", "link"])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_a_swap_for_a_symlink_out_of_the_roots_between_any_two_calls_is_never_read(tmp_path, monkeypatch, start,
                                                                                    stride):
    """race.csv flips between a file inside the root and a symlink to one outside, `stride` calls apart,
    from before the tailer's first call to after its last: no outside row is ever read."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.csv").write_bytes(rows(1_000, 5))
    (root / "inside.csv").write_bytes(rows(0, 5))
    race = str(root / "race.csv")
    made = iter(range(1_000_000))

    def to_link():
        tmp = f"{race}.{next(made)}"
        os.symlink(outside / "secret.csv", tmp)
        os.rename(tmp, race)

    def to_file():
        tmp = f"{race}.{next(made)}"
        os.link(root / "inside.csv", tmp)
        os.rename(tmp, race)

    def read(flips, at):
        (to_file if start == "file" else to_link)()
        source = TailSource(race, roots=[str(root)], rescan=0, polling=True)
        ids = []
        try:
            hook.arm(flips, at, stride)
            for _ in range(3):
                b = source.next_batch()
                if b is not None and b.table.num_rows:
                    ids += b.table.column("id").to_pylist()
        finally:
            source.close()
        return ids

    hook = Interleave(HOOKED + RESOLVING)
    hook.install(monkeypatch)
    assert sorted(read([], 1)) == (list(range(5)) if start == "file" else [])
    calls = hook.calls
    assert calls > 5
    flips = [to_link, to_file] * 3 if start == "file" else [to_file, to_link] * 3
    for at in range(1, calls + 1):
        ids = read(list(flips), at)
        assert not [i for i in ids if i >= 1_000], f"swap before call {at}: rows from outside the roots were read"
