"""Hostile input beyond the corpus in tests/data/bad/: what a red team sent (issue 16), large
cases made on the fly, and hypothesis-made names and values. References are pandas and plain
Python arithmetic. JSON Lines goes through the tail command or a driver in its own process,
since pyarrow has killed the process on some lines."""
import csv
import io
import math
import os
import subprocess
import sys
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.cli import main
from engine.errors import UserError
from engine.ingest.parse import MAX_LINE, Parser, sample_schema, sniff
from engine.runtime import Engine
from engine.schema import Column, Schema, time_seconds
from tests.conftest import ROOT, run_cli, tail_once
from tests.test_parse import replay_bytes


def assert_stats_match(stats: dict, values: pd.Series) -> None:
    assert stats["count"] == values.count()
    for name, want in [("mean", values.mean()), ("var", values.var()), ("std", values.std()),
                       ("min", values.min()), ("max", values.max())]:
        assert stats[name] == pytest.approx(want, rel=1e-12), name


# --- JSON Lines ------------------------------------------------------------------------------

def test_jsonl_nan_and_infinity_are_flagged_and_the_stats_match_pandas_over_the_finite_values(tmp_path):
    values = ["1.5", "NaN", "2", "Infinity", "-0.5", "3", "-Infinity", "4.25", "2", "1", "0", "7", "NaN"]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(f'{{"a": {v}, "i": {i}}}\n' for i, v in enumerate(values)))
    doc, bad, rows = tail_once(path, tmp_path / "d")
    df = pd.DataFrame({"a": [float(v) for v in values], "i": range(len(values))}).replace([np.inf, -np.inf], np.nan)
    assert doc["rows"] == {"ingested": 13, "quarantined": 0, "late": 0, "flagged": 4, "replayed": 0}
    assert sorted(b["reason"] for b in bad) == sorted(f"column 'a': {v!r} is not a finite number"
                                                      for v in ["nan", "inf", "-inf", "nan"])
    assert all(b["kept"] for b in bad)
    for stats in (doc["stats"], doc["cumulative"]):
        assert_stats_match(stats["a"], df["a"])
    assert doc["corr"]["a"]["i"] == pytest.approx(df.corr().loc["a", "i"], rel=1e-12)
    assert rows.column("a").null_count == 4


CRASHERS = {
    # each crashed the process inside pyarrow.json.read_json (SIGSEGV), and again on every restart
    "null alone": b"null\n",
    "null isolated by a bad line": b'{"a": 1}\n{"a": "x"}\nnull\n{"a": 2}\n',
    "100,000 nested arrays": b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n{\"a\": 1}\n",
    "100,000 nested objects": b'{"a": ' + b'{"b": ' * 100_000 + b"1" + b"}" * 100_001 + b"\n{\"a\": 1}\n",
}


@pytest.mark.parametrize("data", CRASHERS.values(), ids=CRASHERS.keys())
def test_jsonl_lines_that_crashed_pyarrow_are_quarantined_and_a_restart_goes_on(tmp_path, data):
    path = tmp_path / "c.jsonl"
    path.write_bytes(data)
    # retention off: with "null" alone the first batch has no rows, so there is no rows table to prune yet
    doc, bad, _ = tail_once(path, tmp_path / "d", "--retention-rows", "0")
    lines = [ln for ln in data.split(b"\n") if ln.strip()]
    assert doc["rows"]["ingested"] + doc["rows"]["quarantined"] == len(lines)
    assert any(r in b["reason"] for b in bad for r in ("not a JSON object", "nested deeper than 64 levels"))
    with open(path, "ab") as f:
        f.write(b'{"a": 5}\n')
    again, _, _ = tail_once(path, tmp_path / "d", "--retention-rows", "0")     # the restart resumes instead of crashing again
    assert again["rows"]["ingested"] == doc["rows"]["ingested"] + 1


def test_jsonl_hostile_lines_from_hypothesis_never_crash_and_each_line_is_a_row_or_quarantined():
    out = subprocess.run([sys.executable, "-m", "tests.jsonl_fuzz_driver"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", (out.returncode, out.stdout[-3000:], out.stderr[-3000:])


# --- CSV: records over the block ----------------------------------------------------------------

def test_a_quoted_field_longer_than_a_block_with_line_breaks_costs_its_row_only(tmp_path):
    field = "line of text, with a comma and a \"\"quote\"\"\n" * 220_000          # 9.7 MB, more than a block
    after = [f"{i},fine {i},{i * 0.25}\n" for i in range(3, 1003)]
    data = ("id,note,x\n1,ok,1.5\n" + f'2,"{field}",2.5\n' + "".join(after)).encode()
    snap, bad = replay_bytes(tmp_path, data)
    assert snap.counts["ingested"] == 1001 and snap.counts["quarantined"] == 1
    assert bad[0]["reason"] == f"line longer than {MAX_LINE} bytes"
    assert data[bad[0]["position"]:].startswith(b'2,"line of text')
    want = pd.read_csv(io.BytesIO(data))
    want = want[want["id"] != 2]
    assert_stats_match(snap.to_json()["cumulative"]["x"], want["x"])


def test_a_quote_that_never_closes_costs_its_line_only_even_with_a_block_of_rows_after_it(tmp_path):
    after = "".join(f"{i},ok,{i}\n" for i in range(3, 700_003))         # 9 MB of good rows after the bad line
    data = ('id,note,x\n1,ok,1\n2,"never closed,2\n' + after).encode()
    snap, bad = replay_bytes(tmp_path, data)
    assert snap.counts["ingested"] == 700_001 and snap.counts["quarantined"] == 1
    assert bad[0]["reason"].startswith("unterminated quote") and bad[0]["raw"] == '2,"never closed,2'
    assert snap.to_json()["cumulative"]["x"]["max"] == 700_002


# --- CSV: headers -----------------------------------------------------------------------------------

def test_a_header_line_over_1_mib_keeps_every_row(tmp_path):
    long_name = "n" * (2 << 20)
    snap, bad = replay_bytes(tmp_path, f"id,x,{long_name}\n1,1.5,a\n2,2.5,b\n".encode())
    assert snap.counts["ingested"] == 2 and not bad
    assert snap.schema.names == ["id", "x", long_name]


def test_a_header_line_that_never_ends_is_refused_in_one_line(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_bytes(b"id,x," + b"n" * (9 << 20) + b"\n1,2,3\n")
    out = run_cli("replay", str(path), "--data-dir", str(tmp_path / "d"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "does not end within the first 8 MiB" in out.stderr


NAME_TEXT = st.text(st.one_of(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=";|"),
                              st.sampled_from(["\n", "\r", '"', ",", " ", "\ufeff"])), max_size=10)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(NAME_TEXT, min_size=1, max_size=5),
       st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=4))
def test_header_names_of_any_text_keep_every_row(names, values):
    def line(fields) -> str:
        out = io.StringIO()
        csv.writer(out).writerow(fields)       # RFC 4180: CRLF, fields with CR, LF, quote or comma quoted
        return out.getvalue()
    header, lines = line(names), [line([v] * len(names)) for v in values]
    data = (header + "".join(lines)).encode()
    fmt = sniff(data, final=True)
    if header.strip(" \r\n\ufeff") == "" or header in lines:
        return      # no header at all, or a row that is the header again (quarantined as such)
    assert len(fmt.names) == len(names) == len(set(fmt.names))
    plain = [n for n in names if n == n.strip() and n and not set(n) & set("\r\n\t\ufeff")]
    if len(plain) == len(names) == len(set(names)) and not set(names) & {"_rid", "_ingest"}:
        assert list(fmt.names) == names
    body = data[fmt.data_start:]
    parsed = Parser(fmt, sample_schema(fmt, body, more=False)).parse(body, fmt.data_start, positions=True)
    assert parsed.table.num_rows == len(values) and not parsed.bad
    for name in fmt.names:
        assert parsed.table.column(name).to_pylist() == values


# --- CSV: values ------------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.integers(-2 ** 70, 2 ** 70), st.integers(0, 3))
@example(2 ** 53 + 1, 0)
@example(2 ** 53, 0)
@example(-(2 ** 53) - 1, 0)
@example(2 ** 53 + 1, 2)
@example(2 ** 63 - 1, 0)
@example(-(2 ** 63), 1)
@example(2 ** 63, 0)
@example(-(2 ** 63) - 1, 0)
def test_an_integer_column_is_exact_int64_or_else_text(n, zeros):
    fmt = sniff(b"id\n", final=True)
    digits = str(abs(n)).rjust(len(str(abs(n))) + zeros, "0")
    value = ("-" if n < 0 else "") + digits
    body = f"1\n{value}\n2\n".encode()
    schema = sample_schema(fmt, body, more=False)
    if not -2 ** 63 <= n < 2 ** 63:
        assert schema["id"].kind == "text"          # no number type holds it: an id
        return
    assert (schema["id"].kind, schema["id"].integer, schema["id"].wide) == ("number", True, abs(n) > 2 ** 53)
    assert Parser(fmt, schema).parse(body, 0).table.column("id").to_pylist() == [1, n, 2]


EPOCH = datetime(1970, 1, 1)


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
@example(datetime(9999, 12, 31))
@example(datetime(1, 1, 1))
@example(EPOCH + timedelta(microseconds=2 ** 53))
@example(EPOCH + timedelta(microseconds=2 ** 53 + 1))
def test_a_time_far_from_1970_is_missing_and_flagged_the_row_kept(when):
    fmt = sniff(b"ts,x\n", final=True)
    schema = Schema((Column("ts", "time"), Column("x", "number")))
    body = f"2024-01-01T00:00:00,1\n{when.isoformat()},2\n".encode()
    parsed = Parser(fmt, schema).parse(body, fmt.data_start, positions=True)
    delta = when - EPOCH
    usable = abs((delta.days * 86_400 + delta.seconds) * 10 ** 6 + delta.microseconds) <= 2 ** 53
    assert parsed.table.column("x").to_pylist() == [1.0, 2.0]
    assert parsed.table.column("ts")[1].as_py() == (when if usable else None)
    assert [b.kept for b in parsed.bad] == ([] if usable else [True])


def test_times_stored_before_the_range_check_do_not_stop_a_restart():
    far = pa.array([datetime(9999, 12, 31), datetime(1, 1, 1), None], pa.timestamp("us"))
    seconds = time_seconds(far)
    assert seconds[0] == pytest.approx(253402214400.0) and seconds[1] == pytest.approx(-62135596800.0)
    assert math.isnan(seconds[2])


# --- messages -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path,says", [("/dev/zero", "a device, pipe or socket, not a regular file"),
                                       ("/tmp", "a folder, not a regular file")])
def test_replaying_what_is_not_a_regular_file_says_what_it_is(tmp_path, path, says):
    out = run_cli("replay", path, "--data-dir", str(tmp_path / "d"))
    assert out.returncode == 2 and out.stderr == f"error: {path} is {says}: give a CSV file\n"


@pytest.mark.parametrize("path", ["logs/a\x00b.csv", "logs/\x00*.csv"])
def test_a_path_with_a_nul_byte_is_refused_in_one_line(tmp_path, capsys, path):
    assert main(["tail", path, "--data-dir", str(tmp_path / "d"), "--idle-exit", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "contains a NUL byte" in err
    with Engine(str(tmp_path / "e"), demo=False) as engine:           # the dashboard's way in
        with pytest.raises(UserError, match="contains a NUL byte"):
            engine.add_tail(path)
        with pytest.raises(UserError, match="contains a NUL byte"):
            engine.add_replay(path)
    assert not os.path.exists(tmp_path / "d")
