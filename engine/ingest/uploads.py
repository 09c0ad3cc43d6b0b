"""Spool an uploaded file to disk under <data dir>/uploads/, safely.

The bytes are copied in chunks into a hidden temporary file in the same folder
and renamed into place only when complete, so a replay never sees a half-written
file. The size limit is enforced while copying (a client can lie about the
size); a failed or refused upload leaves nothing behind. UTF-16 files are
re-encoded to UTF-8 on the way, since the parser reads UTF-8 (or cp1252).

The dashboard copies each upload as soon as it arrives (`Spool`), off the page's thread and
one at a time for the whole server, so that the web server's in-memory copy can be dropped
early, many uploads at once do not fight for the two cores, and "Start replay" only has to
start it.
"""
from __future__ import annotations

import codecs
import logging
import os
import re
import tempfile
import threading
import time
from typing import BinaryIO, Callable

from ..errors import UserError
from .parse import sample_schema, sniff
from ..schema import Schema

log = logging.getLogger("rivulet")
UPLOAD_FOLDER = "uploads"
DEFAULT_LIMIT_MB = 200          # matches server.maxUploadSize in .streamlit/config.toml
COPY_CHUNK = 1 << 20
PART_PREFIX = ".part-"
STALE_PART_SECONDS = 3600       # leftovers of a crashed copy are removed after an hour
COPIES_AT_ONCE = 1              # uploads copied to disk at the same time, server-wide
_copying = threading.Semaphore(COPIES_AT_ONCE)


def upload_limit_bytes() -> int:
    """The upload size limit: $RIVULET_UPLOAD_LIMIT_MB, default 200 MB."""
    text = os.environ.get("RIVULET_UPLOAD_LIMIT_MB", str(DEFAULT_LIMIT_MB))
    try:
        mb = float(text)
    except ValueError:
        raise UserError(f"RIVULET_UPLOAD_LIMIT_MB must be a number of megabytes, got {text!r}") from None
    return int(mb * 1024 * 1024)


def safe_name(name: str) -> str:
    """A plain file name: no folders, no leading dots, only letters, digits, '.', '-', '_'."""
    base = os.path.basename(name.replace("\\", "/"))
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip("._-")
    stem, ext = os.path.splitext(base)
    stem = stem[:80] or "upload"
    ext = ext[:10] if ext else ".csv"
    return stem + ext


def save_upload(src: BinaryIO, name: str, data_dir: str, limit_bytes: int | None = None) -> str:
    """Copy `src` to a new file in <data_dir>/uploads/ and return its path.

    Never overwrites: a name already taken gets -2, -3, ... before its extension.
    """
    return place(copy_to_part(src, name, data_dir, limit_bytes), name)


def copy_to_part(src: BinaryIO, name: str, data_dir: str, limit_bytes: int | None = None,
                 progress: Callable[[int], None] | None = None) -> str:
    """Copy `src` into a hidden part file in <data_dir>/uploads/ (its path); `place` names it."""
    limit = upload_limit_bytes() if limit_bytes is None else limit_bytes
    folder = os.path.join(data_dir, UPLOAD_FOLDER)
    os.makedirs(folder, exist_ok=True)
    _remove_stale_parts(folder)
    fd, tmp = tempfile.mkstemp(prefix=PART_PREFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            total = _copy(src, out, name, limit, progress)
        if total == 0:
            raise UserError(f"{name} is empty: upload a CSV file with a header line and rows")
        return tmp
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def place(part: str, name: str) -> str:
    """Give a finished part file its upload name (a free one) and return its path."""
    try:
        return _place(part, os.path.dirname(part), safe_name(name))
    except BaseException:
        if os.path.exists(part):
            os.unlink(part)
        raise


def _copy(src: BinaryIO, out, name: str, limit: int, progress: Callable[[int], None] | None = None) -> int:
    total = 0
    decoder = None
    first = True
    while True:
        chunk = src.read(COPY_CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise UserError(f"{name} is larger than the upload limit of {limit / 1024 / 1024:,.0f} MB: "
                            f"upload a smaller file, or raise RIVULET_UPLOAD_LIMIT_MB and server.maxUploadSize")
        if first:
            first = False
            if chunk.startswith((b"\xff\xfe", b"\xfe\xff")):
                decoder = codecs.getincrementaldecoder("utf-16")()
        out.write(decoder.decode(chunk).encode("utf-8") if decoder else chunk)
        if progress:
            progress(total)
    if decoder:
        out.write(decoder.decode(b"", final=True).encode("utf-8"))
    return total


def _place(tmp: str, folder: str, name: str) -> str:
    """Rename the finished copy to a free name; a hard link makes 'free' atomic across sessions."""
    stem, ext = os.path.splitext(name)
    for n in range(1, 10_000):
        path = os.path.join(folder, name if n == 1 else f"{stem}-{n}{ext}")
        try:
            os.link(tmp, path)
        except FileExistsError:
            continue
        except OSError:                    # a file system without hard links
            if os.path.exists(path):
                continue
            os.replace(tmp, path)
            return path
        os.unlink(tmp)
        return path
    raise UserError(f"too many uploads named {name}; remove some from {folder}")


def _remove_stale_parts(folder: str) -> None:
    now = time.time()
    for entry in os.scandir(folder):
        if entry.name.startswith(PART_PREFIX):
            try:
                if now - entry.stat().st_mtime > STALE_PART_SECONDS:
                    os.unlink(entry.path)
            except FileNotFoundError:
                pass


def peek_columns(head: bytes) -> Schema | None:
    """The columns and kinds a CSV's first bytes show (to offer a time column before replaying)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        head = head.decode("utf-16", errors="ignore").encode("utf-8")
    fmt = sniff(head, final=True)
    if fmt is None:
        return None
    return sample_schema(fmt, head[fmt.data_start:], more=True)    # its last line may be cut short


class Spool:
    """One upload being copied to disk in a background thread, at most COPIES_AT_ONCE at a time.

    `state`: queued (another upload is being copied), saving (`copied` of `size` bytes), saved,
    failed (`error`, one line), started (`stream`: its replay's stream). `release` is called
    once the copy has ended either way: the caller's copy of the bytes is no longer needed.
    `then(start)` runs `start(part_path)` once the file is saved: at once if it is, else in the
    copying thread right after; a second call does nothing (one upload, one replay).
    """

    def __init__(self, src: BinaryIO, name: str, data_dir: str, size: int,
                 release: Callable[[], None] | None = None, limit_bytes: int | None = None):
        self.name, self.size = name, size
        self.head = src.read(1 << 20)       # for the column preview: the file's first MiB
        src.seek(0)
        self.state, self.copied, self.error, self.stream = "queued", 0, None, None
        self.part: str | None = None
        self.discarded = False
        self._start: Callable[[str], str] | None = None
        self._lock = threading.Lock()
        self.done = threading.Event()         # set once saved and started, or failed
        self._src = src                       # dropped once copied, so its bytes can go
        threading.Thread(target=self._copy, args=(data_dir, release, limit_bytes),
                         name=f"rivulet-upload-{safe_name(name)}", daemon=True).start()

    def columns(self) -> Schema | None:
        """The columns its first MiB shows (`peek_columns`), read once: a page asks on every run, and
        parsing a MiB each time for every session that shows an upload kept tens of MB in use."""
        if not hasattr(self, "_columns"):
            try:
                self._columns = peek_columns(self.head)
            except UserError as e:
                self._columns = e
        if isinstance(self._columns, UserError):
            raise self._columns
        return self._columns

    @property
    def asked(self) -> bool:
        """A start was asked for."""
        return self._start is not None

    @property
    def pending(self) -> bool:
        """Still copying, or saved with a start asked for and not run yet."""
        return self.state in ("queued", "saving", "starting") or (self.state == "saved" and self._start is not None)

    def _copy(self, data_dir: str, release, limit_bytes) -> None:
        try:
            with _copying:
                self.state = "saving"
                part = copy_to_part(self._src, self.name, data_dir, limit_bytes,
                                    progress=lambda n: setattr(self, "copied", n))
            with self._lock:
                self.part, self.state = part, "saved"
                start = self._start
                if self.discarded:
                    os.unlink(part)
                    self.state, self.error = "failed", f"{self.name} was removed"
        except Exception as e:
            self._fail(e, "saving")
            start = None
        finally:
            self._src = None
            if release is not None:
                release()
        if start is not None:
            self._run(start)
        elif self.state == "failed":
            self.done.set()

    def then(self, start: Callable[[str], str]) -> None:
        with self._lock:
            if self._start is not None or self.state in ("failed", "started"):
                return
            self._start = start
            if self.state != "saved":
                return                          # the copying thread runs it when saved
        self._run(start)

    def _run(self, start: Callable[[str], str]) -> None:
        with self._lock:
            if self.state != "saved":
                return
            self.state = "starting"
        try:
            self.stream = start(self.part)
            self.state = "started"
        except Exception as e:
            self._fail(e, "starting")
        self.done.set()

    def discard(self) -> None:
        """The user removed the file before starting it: delete its copy (now, or once copied)."""
        with self._lock:
            if self._start is not None or self.state in ("starting", "started"):
                return
            self.discarded = True
            if self.state == "saved":
                os.unlink(self.part)
                self.state, self.error = "failed", f"{self.name} was removed"

    def _fail(self, e: Exception, doing: str) -> None:
        if isinstance(e, UserError):
            self.error = str(e)
        elif isinstance(e, OSError):
            self.error = f"{self.name} could not be saved: {e.strerror or e}"
        else:
            log.exception("%s %s failed", doing, self.name)
            self.error = f"{doing.capitalize()} {self.name} failed ({type(e).__name__}); the server log has details"
        self.state = "failed"


def start_replay(engine, spool: Spool, **replay) -> None:
    """Replay the upload as soon as it is saved; the file is removed again if the replay is refused."""
    def start(part: str) -> str:
        path = place(part, spool.name)
        try:
            return engine.add_replay(path, **replay)
        except BaseException:
            os.unlink(path)
            raise
    spool.then(start)
