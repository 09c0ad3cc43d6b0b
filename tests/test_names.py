"""Column names DuckDB would fold together, the store's own names, empty and hostile names.

Sources store safe names (schema.safe_names): unique without regard to case, reserved names and
empty ones renamed with a visible suffix (`id`, `id.1`; `_rid.1`; `column_3`); JSON keys keep
their key. Pipeline steps that would make such a name are refused, naming the step.
"""
import csv
import io
import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import assume, HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import UserError
from engine.ingest.parse import Parser, infer_schema, sniff
from engine.prep.pipeline import as_pipeline
from engine.runtime import Engine
from engine.schema import RESERVED, Column, Schema, name_clash, safe_names
from engine.store.duck import DuckStore
from tests.conftest import run_cli, wait_for

# names as a user might write them: any printable text (quotes, spaces, unicode), case variants of
# each other and of the store's columns, empty, very long; no line breaks or delimiters other than
# the comma (those change how the header line itself is read)
PRINTABLE = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=";|\t"), max_size=12)
NAMES = st.lists(st.one_of(PRINTABLE, st.sampled_from(["ID", "id", "Id", "_RID", "_rid", "_Ingest", "", "  ",
                                                       'a"b', "ǅ", "K", "x" * 300, "É", "é"])),
                 min_size=1, max_size=8)


def csv_bytes(names, rows):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(names)
    w.writerows(rows)
    return out.getvalue().encode()


def visible(original: str, safe: str, i: int) -> bool:
    """The user's name shows in the stored one: as it is, or with a suffix `.n`."""
    base = original.strip() or f"column_{i + 1}"
    return safe == base or (safe.startswith(base + ".") and safe[len(base) + 1:].isdigit())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(NAMES)
def test_hostile_csv_headers_are_stored_under_safe_visible_names(tmp_path_factory, names):
    rows = [[str(i * 10 + j) for j in range(len(names))] for i in range(3)]
    # a data line equal to the header is a repeated header (quarantined), and a header of one blank
    # name is a blank line (skipped): both are the parser's rules, not name cases
    assume(all([n.strip() for n in names] != r for r in rows) and not (len(names) == 1 and not names[0].strip()))
    data = csv_bytes(names, rows)
    fmt = sniff(data, final=True)
    assert len(fmt.names) == len(names)
    schema = infer_schema(fmt, data[fmt.data_start:])
    assert name_clash(schema.names) is None
    assert all(visible(o, s, i) for i, (o, s) in enumerate(zip(names, schema.names)))
    table = Parser(fmt, schema).parse(data[fmt.data_start:], fmt.data_start).table
    store = DuckStore(str(tmp_path_factory.mktemp("d")))
    try:
        sid = store.create_stream("s", {})
        store.set_schema(sid, schema)
        stored = table.add_column(0, "_ingest", pa.array(np.zeros(3, np.int64), pa.timestamp("us")))
        stored = stored.add_column(0, "_rid", pa.array(np.arange(3), pa.int64()))
        store.commit(sid, stored, [], "replay", {"replay": {"offset": 1}},
                     {"next_rid": 3, "ingested": 3, "quarantined": 0, "flagged": 0, "late": 0, "window_from": 0,
                      "cumulative": None})
        back = store.rows(sid)
        assert back.column_names == ["_rid", "_ingest", *schema.names]
        for j, name in enumerate(schema.names):
            assert back.column(name).to_pylist() == [float(r[j]) for r in rows]
        assert store.rows(sid, columns=schema.names[-1:]).column_names == schema.names[-1:]
    finally:
        store.close()


def test_names_duckdb_folds_together_replay_end_to_end(tmp_path):
    path = tmp_path / "clash.csv"
    path.write_bytes(csv_bytes(["ID", "id", "Id", "_RID", "_rid", "_ingest", "", "x"],
                               [[i, i + 1, i + 2, i + 3, i + 4, i + 5, i + 6, i + 7] for i in range(5)]))
    out = run_cli("replay", str(path), "--data-dir", str(tmp_path / "d"), "--json")
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)["stats"]
    assert list(stats) == ["ID", "id.1", "Id.2", "_RID.1", "_rid.2", "_ingest.1", "column_7", "x"]
    assert [stats[c]["mean"] for c in stats] == [2.0 + j for j in range(8)]


def test_json_keys_that_fold_together_or_are_empty_or_reserved_are_kept(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [{"A": i, "a": 10 * i, "": -i, "_rid": 100 + i, "_INGEST": "t", " pad ": i % 2 == 0} for i in range(20)]
    (logs / "app.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    data = str(tmp_path / "data")
    with Engine(data) as engine:
        name = engine.add_tail(str(logs / "app.jsonl"), trusted=True)
        assert wait_for(lambda: engine.snapshot(name) is not None and engine.snapshot(name).counts["ingested"] == 20,
                        timeout=60)
        s = engine.streams[name]
        assert s.error is None
        assert s.schema.names == ["A", "a.1", "column_3", "_rid.1", "_INGEST.1", "pad"]
        rows = engine.store.rows(s.id)
    assert rows.column("a.1").to_pylist() == [10.0 * i for i in range(20)]
    assert rows.column("column_3").to_pylist() == [-float(i) for i in range(20)]
    assert rows.column("_rid.1").to_pylist() == [100.0 + i for i in range(20)]
    assert rows.column("pad").to_pylist() == [i % 2 == 0 for i in range(20)]
    # the keys survive a restart: the stored schema maps names back to them
    with Engine(data) as engine:
        with open(logs / "app.jsonl", "a") as f:
            f.write(json.dumps({"A": 99, "a": 990, "": -99, "_rid": 199, "_INGEST": "u", " pad ": True}) + "\n")
        assert wait_for(lambda: engine.snapshot(name) is not None and engine.snapshot(name).counts["ingested"] == 21,
                        timeout=60)
        last = engine.store.rows(engine.streams[name].id, last=1).to_pylist()[0]
    assert (last["a.1"], last["column_3"], last["_rid.1"], last["pad"]) == (990.0, -99.0, 199.0, True)


KINDS = Schema((Column("a", "number"), Column("b", "number"), Column("site", "text"),
                Column("site_north", "number")))


@pytest.mark.parametrize("step, message", [
    ({"kind": "derive", "params": {"name": "_rid", "expr": "a"}}, "'_rid' is reserved"),
    ({"kind": "derive", "params": {"name": "_Ingest", "expr": "a"}}, "'_Ingest' is reserved"),
    ({"kind": "derive", "params": {"name": "A", "expr": "a + b"}}, "'A' and 'a' would be one column"),
    ({"kind": "rename", "params": {"columns": {"a": "B"}}}, "'B' and 'b' would be one column"),
    ({"kind": "rename", "params": {"columns": {"a": " "}}}, "a column name is empty"),
    ({"kind": "select", "params": {"columns": ["a", "a"]}}, "two columns would be named 'a'"),
    ({"kind": "onehot", "params": {"column": "site", "categories": ["north", "south"]}},
     "the one-hot column 'site_north' would overwrite the existing column"),
    ({"kind": "onehot", "params": {"column": "site", "categories": ["East", "east"]}},
     "'site_East' and 'site_east' would be one column"),
])
def test_steps_that_would_make_a_clashing_or_reserved_name_are_refused(step, message):
    with pytest.raises(UserError) as e:
        as_pipeline([{"kind": "fill_missing", "params": {"columns": ["a"], "value": 0}}, step]).check(KINDS)
    text = str(e.value)
    assert text.startswith(f"step 2 ({step['kind']}): ") and message in text and "\n" not in text


@settings(max_examples=200, deadline=None)
@given(PRINTABLE)
def test_a_derived_name_is_accepted_exactly_when_it_can_be_stored(name):
    spec = [{"kind": "derive", "params": {"name": name, "expr": "a * 2"}}]
    clash = name_clash([n for n in KINDS.names if n != name] + [name])
    try:
        out = as_pipeline(spec).check(KINDS)
    except UserError as e:
        assert clash is not None or not name.strip(), str(e)
        assert str(e).startswith("step 1 (derive): ")
        return
    assert clash is None and name in out.names


def test_safe_names_examples():
    assert safe_names(["ID", "id", "Id", "", " a ", "_RID", "_rid", "_ingest", "id.1"]) == \
        ["ID", "id.1", "Id.2", "column_4", "a", "_RID.1", "_rid.2", "_ingest.1", "id.1.1"]
    assert all(r in RESERVED for r in ("_rid", "_ingest"))
