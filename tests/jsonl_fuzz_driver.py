"""Hypothesis-made hostile JSON lines through the JSON Lines reader, run in its own process by
tests/test_hostile_input.py: pyarrow has killed the process (SIGSEGV) on some lines, which must
fail that test rather than kill pytest. Every non-blank line must end as one row or one
quarantined line; prints "ok" when all examples hold."""
import json
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.ingest.jsonl import JsonParser, infer_schema, lines
from engine.ingest.parse import MAX_LINE

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(),
                    st.text(max_size=8), st.sampled_from(["2024-01-01T00:00:00", "9999-12-31T00:00:00",
                                                          "0001-01-01", "[[[", '"\\"{']))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                       max_size=3), max_leaves=8)


def encode(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()     # NaN and Infinity as the bare literals


OBJECTS = st.dictionaries(st.sampled_from(["a", "b", "ts", "", "_rid"]) | st.text(max_size=3), VALUES,
                          max_size=4).map(encode)
NESTED = st.tuples(st.integers(0, 20_000), st.sampled_from([b"[", b'{"k":'])).map(
    lambda t: b'{"deep": ' + t[1] * t[0] + b"1" + (b"]" if t[1] == b"[" else b"}") * t[0] + b"}")
HOSTILE = st.one_of(
    OBJECTS, OBJECTS, NESTED, VALUES.map(encode),
    st.sampled_from([b"null", b"[]", b"3", b'"x"', b"true", b"{}", b"{} null", b'{"a":1}{"a":2}', b'{"a":',
                     b'{"a": NaN}', b'{"a": -Infinity}', b'{"a": 1e400}', b'{"a": "\xff\xfe"}', b"  ", b"\r",
                     b'{"a": 9007199254740993}', b"\xef\xbb\xbf{}"]),
    st.binary(max_size=20))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(HOSTILE, max_size=25), st.booleans())
def every_line_is_a_row_or_quarantined(pieces, infer_first):
    data = b"\n".join(pieces) + b"\n"
    schema = infer_schema(data) if infer_first else infer_schema(b'{"a": 1.5, "b": "x", "ts": "2024-01-01T00:00:00"}\n')
    if schema is None:
        return
    parsed = JsonParser(schema, max_line=MAX_LINE).parse(data, 0)
    assert parsed.table.num_rows + parsed.rejected == len(lines(data)[0]), (data[:300], parsed.bad)
    assert parsed.table.schema == schema.arrow()


if __name__ == "__main__":
    every_line_is_a_row_or_quarantined()
    sys.stdout.write("ok\n")
