"""Spool an uploaded file to disk under <data dir>/uploads/, safely.

The bytes are copied in chunks into a hidden temporary file in the same folder
and renamed into place only when complete, so a replay never sees a half-written
file. The size limit is enforced while copying (a client can lie about the
size); a failed or refused upload leaves nothing behind. UTF-16 files are
re-encoded to UTF-8 on the way, since the parser reads UTF-8 (or cp1252).
"""
from __future__ import annotations

import codecs
import os
import re
import tempfile
import time
from typing import BinaryIO

from ..errors import UserError
from .parse import sample_schema, sniff
from ..schema import Schema

UPLOAD_FOLDER = "uploads"
DEFAULT_LIMIT_MB = 200          # matches server.maxUploadSize in .streamlit/config.toml
COPY_CHUNK = 1 << 20
PART_PREFIX = ".part-"
STALE_PART_SECONDS = 3600       # leftovers of a crashed copy are removed after an hour


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
    limit = upload_limit_bytes() if limit_bytes is None else limit_bytes
    folder = os.path.join(data_dir, UPLOAD_FOLDER)
    os.makedirs(folder, exist_ok=True)
    _remove_stale_parts(folder)
    fd, tmp = tempfile.mkstemp(prefix=PART_PREFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            total = _copy(src, out, name, limit)
        if total == 0:
            raise UserError(f"{name} is empty: upload a CSV file with a header line and rows")
        return _place(tmp, folder, safe_name(name))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _copy(src: BinaryIO, out, name: str, limit: int) -> int:
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


def replay_upload(engine, src: BinaryIO, name: str, **replay) -> str:
    """Spool an upload and start replaying it; the file is removed again if the replay is refused."""
    path = save_upload(src, name, engine.data_dir)
    try:
        return engine.add_replay(path, **replay)
    except BaseException:
        os.unlink(path)
        raise
