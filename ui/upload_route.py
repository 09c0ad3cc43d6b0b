"""Uploads reach disk as they arrive, not memory: an ASGI middleware in front of Streamlit's upload route.

Streamlit's route (`PUT /_stcore/upload_file/<session>/<file>`, Streamlit 1.67) parses the multipart
body and then reads the whole file into one bytes object, kept for the browser session; six 150 MB
uploads at once took the server from 0.5 to 1.8 GB. Here the body is parsed as it streams in and
the file's bytes are written to a file under `<data dir>/.received/`; Streamlit's handler
still runs as before (XSRF check, session check, size limit) but reads a body whose file part is
empty, so it keeps an empty record under the same id. Pages find the file on disk with
`received(session_id, file_id)` (ui/uploads.py `opened`).

This is the one place that depends on how Streamlit's upload route reads its body;
tests/test_upload_route.py runs Streamlit's own route behind it and fails if that changes.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass

import anyio
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

ROUTE = re.compile(r"/_stcore/upload_file/([^/]+)/([^/]+)$")
FOLDER = ".received"            # inside the data folder
WRITE_BLOCK = 1 << 20
STALE_SECONDS = 3600            # a received file no page took (a closed tab) goes after an hour
MAX_FIELDS_BYTES = 64 * 1024    # the body's other parts (Streamlit sends none)


@dataclass
class Received:
    path: str
    name: str
    size: int
    at: float


_lock = threading.Lock()
_received: dict[tuple[str, str], Received] = {}


def received(session_id: str, file_id: str) -> Received | None:
    """The file a session's upload wrote to disk, if it came through this route."""
    with _lock:
        return _received.get((session_id, file_id))


def forget(session_id: str, file_id: str) -> None:
    """Delete a received file (taken by a page, or removed in the browser)."""
    with _lock:
        got = _received.pop((session_id, file_id), None)
    if got is not None:
        _unlink(got.path)


def _keep(session_id: str, file_id: str, got: Received) -> None:
    now = time.time()
    with _lock:
        old = _received.pop((session_id, file_id), None)
        stale = [k for k, r in _received.items() if now - r.at > STALE_SECONDS]
        gone = [_received.pop(k) for k in stale]
        _received[(session_id, file_id)] = got
    for r in ([old] if old else []) + gone:
        _unlink(r.path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class UploadsToDisk:
    """ASGI middleware: an upload's file part goes to disk in 1 MiB writes; Streamlit sees it empty."""

    def __init__(self, app, folder: str | None = None, limit_bytes: int | None = None):
        self.app = app
        if folder is None:
            from engine import default_data_dir
            folder = os.path.join(os.path.abspath(default_data_dir()), FOLDER)
        self.folder = folder
        self.limit = limit_bytes
        shutil.rmtree(folder, ignore_errors=True)      # left by an earlier server: no session can ask for them
        os.makedirs(folder, exist_ok=True)

    async def __call__(self, scope, receive, send) -> None:
        found = ROUTE.search(scope.get("path", "")) if scope["type"] == "http" else None
        if found is None or scope["method"] not in ("PUT", "DELETE"):
            return await self.app(scope, receive, send)
        session_id, file_id = found.groups()
        if scope["method"] == "DELETE":
            await self.app(scope, receive, send)
            return forget(session_id, file_id)
        body = _Body(scope, receive, self.folder, self._limit())
        status = []

        async def sent(message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)
        try:
            await self.app(scope, body.receive, sent)
        finally:
            if body.file is not None:
                if status and 200 <= status[0] < 300:
                    _keep(session_id, file_id, Received(body.file, body.name, body.size, time.time()))
                else:
                    _unlink(body.file)

    def _limit(self) -> int:
        if self.limit is not None:
            return self.limit
        from streamlit import config
        return int(config.get_option("server.maxUploadSize")) * 1024 * 1024


class _Body:
    """The request body as Streamlit's handler reads it: the whole multipart body parsed at its first
    read, the file part written to disk, then handed on as one message with that part empty."""

    def __init__(self, scope, receive, folder: str, limit: int):
        self._receive, self.folder, self.limit = receive, folder, limit
        headers = dict(scope["headers"])
        kind, options = parse_options_header(headers.get(b"content-type", b""))
        self.boundary = options.get(b"boundary")
        self.multipart = kind == b"multipart/form-data" and bool(self.boundary)
        self.done = False
        self.file: str | None = None          # the received file's path, once complete
        self.name, self.size = "", 0

    async def receive(self):
        if self.done or not self.multipart:
            return await self._receive()
        self.done = True
        return {"type": "http.request", "body": await self._spool(), "more_body": False}

    async def _spool(self) -> bytes:
        out = bytearray()           # the body handed on: everything but the file's bytes
        block = bytearray()
        fd, path = tempfile.mkstemp(dir=self.folder, prefix=".part-")
        sink = os.fdopen(fd, "wb")
        part = {"headers": [], "field": b"", "value": b"", "file": False}
        files = []

        def header_field(data, start, end):
            part["field"] += data[start:end]

        def header_value(data, start, end):
            part["value"] += data[start:end]

        def header_end():
            part["headers"].append((part["field"], part["value"]))
            part["field"], part["value"] = b"", b""

        def headers_done():
            out.extend(b"--" + self.boundary + b"\r\n")
            for field, value in part["headers"]:
                out.extend(field + b": " + value + b"\r\n")
                if field.lower() == b"content-disposition":
                    _, options = parse_options_header(value)
                    if b"filename" in options:
                        part["file"] = True
                        files.append(options[b"filename"].decode("utf-8", "replace"))
            out.extend(b"\r\n")

        def part_data(data, start, end):
            if part["file"]:
                self.size += end - start
                if self.size > self.limit:
                    raise HTTPException(status_code=413, detail="File too large")
                block.extend(data[start:end])
            else:
                out.extend(data[start:end])
                if len(out) > MAX_FIELDS_BYTES:
                    raise HTTPException(status_code=400, detail="Form fields too large")

        def part_end():
            out.extend(b"\r\n")
            part.update(headers=[], file=False)

        parser = MultipartParser(self.boundary, {
            "on_header_field": header_field, "on_header_value": header_value, "on_header_end": header_end,
            "on_headers_finished": headers_done, "on_part_data": part_data, "on_part_end": part_end})
        try:
            while True:
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect()
                parser.write(message.get("body", b""))
                if len(files) > 1:
                    raise HTTPException(status_code=400, detail=f"Expected 1 file, but got {len(files)}")
                if len(block) >= WRITE_BLOCK or not message.get("more_body") and block:
                    chunk = bytes(block)
                    block.clear()
                    await anyio.to_thread.run_sync(sink.write, chunk)
                if not message.get("more_body"):
                    break
            parser.finalize()
            sink.close()
        except BaseException:
            sink.close()
            _unlink(path)
            raise
        out.extend(b"--" + self.boundary + b"--\r\n")
        if files:
            self.file, self.name = path, files[0]
        else:
            _unlink(path)
        return bytes(out)
