"""Uploads are spooled safely: atomic, size-limited, cleaned up, never overwriting."""
import io
import os

import pytest

from engine.errors import UserError
from engine.read.export_csv import to_csv_bytes
from engine.ingest.uploads import peek_columns, safe_name, save_upload


class Reads(io.BytesIO):
    """Records the sizes asked for, to show the copy is chunked."""
    def __init__(self, data):
        super().__init__(data)
        self.asks = []

    def read(self, n=-1):
        self.asks.append(n)
        return super().read(n)


def test_upload_lands_whole_under_uploads(tmp_path):
    data = b"a,b\n" + b"1,2\n" * 600_000          # 2.4 MB: several chunks
    src = Reads(data)
    path = save_upload(src, "my data.csv", str(tmp_path))
    assert path == str(tmp_path / "uploads" / "my_data.csv")
    assert open(path, "rb").read() == data
    assert len(src.asks) > 2 and all(n > 0 for n in src.asks)
    assert os.listdir(tmp_path / "uploads") == ["my_data.csv"]


def test_same_name_never_overwrites(tmp_path):
    a = save_upload(io.BytesIO(b"x\n1\n"), "r.csv", str(tmp_path))
    b = save_upload(io.BytesIO(b"x\n2\n"), "r.csv", str(tmp_path))
    assert os.path.basename(b) == "r-2.csv"
    assert open(a).read() == "x\n1\n" and open(b).read() == "x\n2\n"


def test_oversized_upload_is_refused_and_nothing_is_left(tmp_path):
    with pytest.raises(UserError, match="larger than the upload limit of 1 MB"):
        save_upload(io.BytesIO(b"x\n" + b"9\n" * 1_000_000), "big.csv", str(tmp_path), limit_bytes=1 << 20)
    assert os.listdir(tmp_path / "uploads") == []


def test_failed_copy_leaves_nothing(tmp_path):
    class Broken(io.BytesIO):
        def read(self, n=-1):
            if self.tell() > 0:
                raise OSError("connection reset")
            return super().read(10)

    with pytest.raises(OSError):
        save_upload(Broken(b"a\n" * 100), "r.csv", str(tmp_path))
    assert os.listdir(tmp_path / "uploads") == []


def test_empty_upload_is_refused(tmp_path):
    with pytest.raises(UserError, match="empty"):
        save_upload(io.BytesIO(b""), "e.csv", str(tmp_path))


@pytest.mark.parametrize("name, want", [("../../etc/passwd", "passwd.csv"), ("..\\x\\evil.csv", "evil.csv"),
                                        (".hidden.csv", "hidden.csv"), ("räksmörgås 1.csv", "r_ksm_rg_s_1.csv"),
                                        ("", "upload.csv")])
def test_safe_names(name, want):
    assert safe_name(name) == want


def test_utf16_is_reencoded(tmp_path):
    text = "name,v\nzoë,1\n"
    path = save_upload(io.BytesIO(text.encode("utf-16")), "u.csv", str(tmp_path))
    assert open(path, encoding="utf-8").read() == text


def test_peek_columns_offers_time_columns():
    schema = peek_columns(b"when,site,v\n2024-01-01 00:00:00,a,1.5\n2024-01-01 00:00:01,b,2")
    assert [(c.name, c.kind) for c in schema.columns] == [("when", "time"), ("site", "text"), ("v", "number")]


def test_csv_export_escapes_formulas_but_not_numbers():
    import pandas as pd
    df = pd.DataFrame({"raw": ["=HYPERLINK(\"x\")", "+1", "-cmd", "@SUM(A1)", "plain", None], "v": [-1.5, 2, 3, 4, 5, 6]})
    back = pd.read_csv(io.BytesIO(to_csv_bytes(df)))
    assert back.raw.tolist()[:5] == ["'=HYPERLINK(\"x\")", "'+1", "'-cmd", "'@SUM(A1)", "plain"]
    assert back.v.tolist() == [-1.5, 2, 3, 4, 5, 6]
