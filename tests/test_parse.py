"""Bad rows go to quarantine with a reason; good rows are all counted."""
import json

import pytest

from engine.runtime import Engine
from tests.conftest import run_cli


def replay_bytes(tmp_path, data: bytes):
    path = tmp_path / "in.csv"
    path.write_bytes(data)
    with Engine(str(tmp_path / "data")) as engine:
        name = engine.add_replay(str(path))
        snap = engine.wait(name, timeout=60)
        bad = engine.quarantine(name).to_pylist()
    return snap, sorted(bad, key=lambda r: r["position"])


HEAD = b"id,x,name\n"
CASES = [
    # (label, body, good rows, rejected, flagged, reason fragment)
    ("wrong field count", b"1,1.5,a\n2,2.5\n3,3.5,c,extra\n4,4.5,d\n", 2, 2, 0, "expected 3 fields"),
    ("unparsable number", b"".join(b"%d,%d.5,a\n" % (i, i) for i in range(12)) + b"12,abc,b\n", 13, 0, 1,
     "not a finite number"),
    ("repeated header", b"1,1.5,a\nid,x,name\n2,2.5,b\n", 2, 1, 0, "repeated header"),
    ("blank lines", b"1,1.5,a\n\n\r\n2,2.5,b\n\n", 2, 0, 0, None),
    ("crlf", b"1,1.5,a\r\n2,2.5,b\r\n", 2, 0, 0, None),
    ("quoted newline", b'1,1.5,"two\nlines"\n2,2.5,"say ""hi"""\n', 2, 0, 0, None),
    ("inf and 1e400", b"1,inf,a\n2,1e400,b\n3,-inf,c\n4,4.0,d\n", 4, 0, 3, "not a finite number"),
    ("NA spellings", b"1,NA,a\n2,null,b\n3,None,c\n4,,d\n5,5.0,e\n", 5, 0, 0, None),
    ("no final newline", b"1,1.5,a\n2,2.5,b", 2, 0, 0, None),
]


@pytest.mark.parametrize("label,body,good,rejected,flagged,reason", CASES, ids=[c[0] for c in CASES])
def test_bad_rows(tmp_path, label, body, good, rejected, flagged, reason):
    snap, bad = replay_bytes(tmp_path, HEAD + body)
    rows = snap.to_json()["rows"]
    assert (rows["ingested"], rows["quarantined"], rows["flagged"]) == (good, rejected, flagged)
    assert len(bad) == rejected + flagged
    if reason:
        assert all(reason in b["reason"] for b in bad), bad
        assert all(b["raw"] for b in bad)


def test_na_values_are_missing_not_text(tmp_path):
    snap, _ = replay_bytes(tmp_path, HEAD + b"1,NA,a\n2,null,b\n3,None,c\n4,4.0,d\n5,6.0,e\n")
    assert snap.stats["x"]["count"] == 2 and snap.stats["x"]["mean"] == 5.0


def test_positions_point_at_the_bad_record(tmp_path):
    body = b"1,1.5,a\n2,2.5\n3,3.5,c\n"
    data = HEAD + body
    _, bad = replay_bytes(tmp_path, data)
    assert data[bad[0]["position"]:].startswith(b"2,2.5\n")


def test_undecodable_bytes_in_a_utf8_file(tmp_path):
    snap, bad = replay_bytes(tmp_path, HEAD + "1,1.5,café\n".encode() + b"2,2.5,\xff\xfe\n3,3.5,c\n")
    assert snap.counts["ingested"] == 2 and snap.counts["quarantined"] == 1
    assert "invalid UTF-8" in bad[0]["reason"]


def test_latin1_file_is_decoded_not_lost(tmp_path):
    snap, bad = replay_bytes(tmp_path, HEAD + "1,1.5,café\n2,2.5,naïve\n".encode("latin-1"))
    assert snap.counts["ingested"] == 2 and not bad
    assert snap.window_table().column("name").to_pylist() == ["café", "naïve"]


def test_bom_is_not_part_of_the_first_name(tmp_path):
    snap, _ = replay_bytes(tmp_path, b"\xef\xbb\xbf" + HEAD + b"1,1.5,a\n")
    assert "id" in snap.columns


def test_over_long_line(tmp_path):
    from engine.ingest.parse import MAX_LINE
    long = b"2,2.5," + b"x" * (MAX_LINE + 10) + b"\n"
    snap, bad = replay_bytes(tmp_path, HEAD + b"1,1.5,a\n" + long + b"3,3.5,c\n")
    assert snap.counts["ingested"] == 2 and snap.counts["quarantined"] == 1
    assert "longer than" in bad[0]["reason"] and len(bad[0]["raw"]) < 5000


@pytest.mark.parametrize("data", [b"", HEAD, b"\n\n"], ids=["empty", "header only", "blank only"])
def test_empty_files_are_not_errors(tmp_path, data):
    path = tmp_path / "e.csv"
    path.write_bytes(data)
    out = run_cli("replay", str(path), "--data-dir", str(tmp_path / "d"), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rows"]["ingested"] == 0


def test_numeric_column_stays_numeric(tmp_path):
    """A text value after inference flags the row; the column never turns into strings."""
    body = b"".join(b"%d,%d.5,a\n" % (i, i) for i in range(2000)) + b"2000,oops,b\n"
    snap, bad = replay_bytes(tmp_path, HEAD + body)
    assert "x" in snap.columns and snap.counts["flagged"] == 1
    assert snap.cumulative_moments.count()[snap.columns.index("x")] == 2000
