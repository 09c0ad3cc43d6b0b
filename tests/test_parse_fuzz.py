"""Fuzz the CSV parser with hypothesis (bounded): no crash, no hang, and every
non-blank record is either accepted as a row or quarantined, never lost or doubled."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.ingest.parse import Parser, cut, sniff
from engine.schema import Column, Schema

HEADER = b"a,b,c\n"
FMT = sniff(HEADER, final=True)
SCHEMA = Schema((Column("a", "number"), Column("b", "text"), Column("c", "number")))


def records(data: bytes) -> int:
    """Non-blank records, byte by byte: a newline after an even number of quotes ends one; a quote
    still open at the end of the data ends its record at its own line, and the lines after it count again."""
    count, start = 0, 0
    while start < len(data):
        quotes, end = 0, None
        for j in range(start, len(data)):
            if data[j] == 34:
                quotes += 1
            elif data[j] == 10 and quotes % 2 == 0:
                end = j + 1
                break
        if end is None:
            end = (data.find(b"\n", start) + 1 or len(data)) if quotes % 2 else len(data)
        count += bool(data[start:end].strip(b" \t\r\n"))
        start = end
    return count


PIECES = [b"1", b"2.5", b"-3e2", b"abc", b",", b",", b'"', b'""', b"\n", b"\r\n", b" ", b"\x00", b"\xff",
          b"\xc3\xa9", b"inf", b"1e400", b"NA", b"a,b,c", b"\t", b";"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=200), st.booleans())
def test_every_record_is_accepted_or_quarantined(pieces, final):
    data = b"".join(pieces)
    block = data if final else data[:cut(data)]
    parsed = Parser(FMT, SCHEMA, max_line=64).parse(block, base=100, positions=True)
    assert parsed.table.num_rows + parsed.rejected == records(block)
    assert parsed.table.schema == SCHEMA.arrow()
    positions = [b.position for b in parsed.bad if not b.kept]
    assert len(set(positions)) == len(positions)
    assert all(100 <= p < 100 + len(block) for p in positions)
    if parsed.ends is not None:
        assert len(parsed.ends) == parsed.table.num_rows


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(data):
    parsed = Parser(FMT, SCHEMA, max_line=256).parse(data, base=0)
    assert parsed.table.num_rows + parsed.rejected == records(data)
