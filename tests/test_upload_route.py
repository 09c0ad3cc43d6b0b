"""ui/upload_route.py in front of Streamlit's own upload route (its real handler, XSRF check and upload
manager, no server): a body streams to disk, Streamlit keeps an empty record, and refused uploads
leave nothing. These fail when Streamlit changes what the middleware relies on: the route's path,
that its handler reads the body only after its XSRF and session checks, and that it keeps the
file part's bytes as the record."""
import asyncio
import os
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.web.server.app_discovery import discover_asgi_app
from streamlit.web.server.starlette.starlette_app_utils import generate_xsrf_token_string
from streamlit.web.server.starlette.starlette_routes import create_upload_routes
from streamlit.web.server.starlette.starlette_server_config import XSRF_COOKIE_NAME

from ui import upload_route
from ui.upload_route import UploadsToDisk

ROOT = Path(__file__).resolve().parent.parent
BOUNDARY = "----rivulettest"


class Sessions:
    def is_active_session(self, session_id: str) -> bool:
        return session_id == "s1"


def server(folder, limit=10 << 20):
    mgr = MemoryUploadedFileManager("/_stcore/upload_file")
    app = Starlette(routes=create_upload_routes(Sessions(), mgr, None),
                    middleware=[Middleware(UploadsToDisk, folder=str(folder), limit_bytes=limit)])
    return app, mgr


def multipart(name: str, data: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: text/csv\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def call(app, method: str, path: str, body: bytes = b"", token: str | None = "good", chunk: int = 65536):
    """One request through the ASGI app, the body in `chunk`-byte messages: (status, bytes of body read)."""
    xsrf = generate_xsrf_token_string()
    headers = [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
               (b"content-length", str(len(body)).encode()),
               (b"cookie", f"{XSRF_COOKIE_NAME}={xsrf}".encode())]
    if token:
        headers.append((b"x-xsrftoken", (xsrf if token == "good" else generate_xsrf_token_string()).encode()))
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": headers, "scheme": "http", "server": ("127.0.0.1", 8501), "client": ("127.0.0.1", 1),
             "http_version": "1.1", "root_path": ""}
    pieces = [body[i:i + chunk] for i in range(0, len(body), chunk)] or [b""]
    state = {"read": 0, "status": None}

    async def receive():
        if pieces:
            piece = pieces.pop(0)
            state["read"] += len(piece)
            return {"type": "http.request", "body": piece, "more_body": bool(pieces)}
        await asyncio.sleep(3600)

    async def send(message):
        if message["type"] == "http.response.start":
            state["status"] = message["status"]
    asyncio.run(app(scope, receive, send))
    return state["status"], state["read"]


def test_upload_goes_to_disk_and_streamlit_keeps_an_empty_record(tmp_path):
    app, mgr = server(tmp_path / "in")
    data = b"ts,x\n" + b"2024-01-01,1.5\n" * 300_000          # 4.5 MB, in 64 KB messages
    status, _ = call(app, "PUT", "/_stcore/upload_file/s1/f1", multipart("a.csv", data))
    assert status == 204
    [rec] = mgr.get_files("s1", ["f1"])
    assert rec.name == "a.csv" and rec.data == b""            # Streamlit holds nothing
    got = upload_route.received("s1", "f1")
    assert got.name == "a.csv" and got.size == len(data)
    assert Path(got.path).read_bytes() == data and Path(got.path).parent == tmp_path / "in"
    call(app, "DELETE", "/_stcore/upload_file/s1/f1")          # removed in the browser
    assert upload_route.received("s1", "f1") is None and os.listdir(tmp_path / "in") == []


@pytest.mark.parametrize("token", [None, "other"])
def test_xsrf_is_still_checked_before_the_body_is_read(tmp_path, token):
    app, mgr = server(tmp_path / "in")
    body = multipart("a.csv", b"x\n" * 1_000_000)
    status, read = call(app, "PUT", "/_stcore/upload_file/s1/f2", body, token=token)
    assert status == 403 and read < len(body)
    assert mgr.get_files("s1", ["f2"]) == [] and upload_route.received("s1", "f2") is None
    assert os.listdir(tmp_path / "in") == []


def test_unknown_session_and_oversized_upload_leave_nothing(tmp_path):
    app, mgr = server(tmp_path / "in", limit=1 << 20)
    status, _ = call(app, "PUT", "/_stcore/upload_file/nobody/f3", multipart("a.csv", b"x\n1\n"))
    assert status == 400
    big = multipart("b.csv", b"x\n" * (1 << 20))               # 2 MB, over the 1 MB limit
    status, _ = call(app, "PUT", "/_stcore/upload_file/s1/f4", big)
    assert status == 413
    assert upload_route.received("s1", "f4") is None and mgr.get_files("s1", ["f4"]) == []
    assert os.listdir(tmp_path / "in") == []


def test_streamlit_run_app_py_serves_the_middleware():
    """`streamlit run app.py` runs the st.App it finds in app.py (imported as module `app`)."""
    found = discover_asgi_app(ROOT / "app.py")
    assert found.is_asgi_app and found.import_string == "app:app"
