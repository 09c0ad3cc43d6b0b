"""The bad-input corpus (tests/data/bad/): each file replayed, outcome as expected.json says.

Every case keeps the engine running: the good rows are counted, the bad ones are in
the quarantine with a reason, or the file is refused up front with a clear message.
"""
import json
import os

import pytest

from engine.errors import UserError
from engine.runtime import Engine

HERE = os.path.join(os.path.dirname(__file__), "data", "bad")
EXPECTED = json.load(open(os.path.join(HERE, "expected.json"), encoding="utf-8"))


def test_corpus_is_complete():
    files = sorted(f for f in os.listdir(HERE) if f != "expected.json")
    assert files == sorted(EXPECTED) and len(files) >= 30


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    with Engine(str(tmp_path_factory.mktemp("bad"))) as e:
        yield e


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input_case(engine, name):
    want = EXPECTED[name]
    path = os.path.join(HERE, name)
    if "refused" in want:
        with pytest.raises(UserError, match=want["refused"]):
            engine.add_replay(path)
        assert not any(s.config.get("original") == path for s in engine.streams.values())
        return
    stream = engine.add_replay(path)
    snap = engine.wait(stream, timeout=30)
    assert snap.error is None
    doc = snap.to_json()
    assert doc["rows"]["ingested"] == want["ingested"]
    assert doc["rows"]["quarantined"] == want["quarantined"]
    assert doc["rows"]["flagged"] == want.get("flagged", 0)
    reasons = engine.quarantine(stream).column("reason").to_pylist()
    assert len(reasons) == want["quarantined"] + want.get("flagged", 0)
    for expected in want.get("reasons", []):
        assert any(expected in r for r in reasons), (expected, reasons)
    for col in want.get("numeric", []):
        assert col in doc["stats"], f"{col} should be numeric"
    for col, n in want.get("count", {}).items():
        assert doc["cumulative"][col]["count"] == n
    sid = engine.streams[stream].id
    for col, value in want.get("text", {}).items():
        assert value in engine.store.rows(sid, columns=[col]).column(col).to_pylist()
    raws = engine.quarantine(stream).column("raw").to_pylist()
    assert all(r for r in raws), "every quarantined row keeps its raw text"
