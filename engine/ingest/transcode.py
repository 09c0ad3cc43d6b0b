"""UTF-16 files are converted to a UTF-8 copy before replay.

The parser works on UTF-8 (or Windows-1252) bytes, and replay positions are byte
offsets, so a UTF-16 file is transcoded once, streaming, into the data folder and
the copy is replayed. The copy is named by the source's path, size and mtime, so a
restart reuses it and a changed file gets a fresh copy.
"""
from __future__ import annotations

import codecs
import hashlib
import os

from ..errors import UserError

BOMS = {codecs.BOM_UTF16_LE: "utf-16-le", codecs.BOM_UTF16_BE: "utf-16-be"}
CHUNK = 1 << 20


def utf16_encoding(path: str) -> str | None:
    with open(path, "rb") as f:
        head = f.read(2)
    return BOMS.get(head)


def as_utf8(path: str, folder: str) -> str:
    """`path` itself when it is not UTF-16, else the path of its UTF-8 copy in `folder`."""
    encoding = utf16_encoding(path)
    if encoding is None:
        return path
    st = os.stat(path)
    key = hashlib.sha256(f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    os.makedirs(folder, exist_ok=True)
    out = os.path.join(folder, f"{os.path.splitext(os.path.basename(path))[0]}-{key}.utf8.csv")
    if os.path.exists(out):
        return out
    tmp = out + ".part"
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    try:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            src.read(2)                      # the BOM
            while chunk := src.read(CHUNK):
                dst.write(decoder.decode(chunk).encode("utf-8"))
            dst.write(decoder.decode(b"", final=True).encode("utf-8"))
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, out)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise UserError(f"could not convert the UTF-16 file {path} to UTF-8: {e.strerror}") from None
    return out
