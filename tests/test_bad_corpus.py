"""The bad-input corpus (tests/data/bad/): each file replayed, outcome as expected.json says.

Every case keeps the engine running: the good rows are counted, the bad ones are in
the quarantine with a reason, or the file is refused up front with a clear message.
CSV files are replayed; JSON Lines files (.jsonl) are followed by the tail command.
"""
import json
import os

import pytest

from engine.errors import UserError
from engine.runtime import Engine
from tests.conftest import tail_once

HERE = os.path.join(os.path.dirname(__file__), "data", "bad")
EXPECTED = json.load(open(os.path.join(HERE, "expected.json"), encoding="utf-8"))


def test_corpus_is_complete():
    files = sorted(f for f in os.listdir(HERE) if f != "expected.json")
    assert files == sorted(EXPECTED) and len(files) >= 30


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    with Engine(str(tmp_path_factory.mktemp("bad"))) as e:
        yield e


def replayed(engine, path):
    """(snapshot JSON, quarantine rows, stored column) of a CSV case, replayed in this process."""
    stream = engine.add_replay(path)
    snap = engine.wait(stream, timeout=30)
    assert snap.error is None
    sid = engine.streams[stream].id
    return snap.to_json(), engine.quarantine(stream).to_pylist(), \
        lambda col: engine.store.rows(sid, columns=[col]).column(col).to_pylist()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input_case(engine, tmp_path, name):
    want = EXPECTED[name]
    path = os.path.join(HERE, name)
    if "refused" in want:
        with pytest.raises(UserError, match=want["refused"]):
            engine.add_replay(path)
        assert not any(s.config.get("original") == path for s in engine.streams.values())
        return
    if name.endswith(".jsonl"):      # followed by the tail command in its own process
        doc, bad, rows = tail_once(path, tmp_path / "d")
        stored = lambda col: rows.column(col).to_pylist()    # noqa: E731
    else:
        doc, bad, stored = replayed(engine, path)
    assert doc["rows"]["ingested"] == want["ingested"]
    assert doc["rows"]["quarantined"] == want["quarantined"]
    assert doc["rows"]["flagged"] == want.get("flagged", 0)
    reasons = [b["reason"] for b in bad]
    assert len(reasons) == want["quarantined"] + want.get("flagged", 0)
    for expected in want.get("reasons", []):
        assert any(expected in r for r in reasons), (expected, reasons)
    for col in want.get("numeric", []):
        assert col in doc["stats"], f"{col} should be numeric"
    for col, n in want.get("count", {}).items():
        assert doc["cumulative"][col]["count"] == n
    for col, value in want.get("text", {}).items():
        assert value in stored(col)
    for col, values in want.get("exact", {}).items():       # integers as written, not their floats
        assert stored(col) == values
    assert all(b["raw"] for b in bad), "every quarantined row keeps its raw text"
