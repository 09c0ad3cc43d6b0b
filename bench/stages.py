"""Where a replay's CPU goes, by stage: thread CPU seconds of each stage of one `engine replay`.

    python bench/stages.py FILE [--data-dir D] [--tree PATH]

Runs the replay in this process with each stage's function wrapped to add up its thread's CPU time
(a stage under "/" is part of the one above it). "native threads" is the process's CPU less the
Python threads' stages: pyarrow's CSV threads, DuckDB's, and the interpreter's own. `--tree` times
another checkout's engine with the same stages (a stage its code does not have is left out).
"""
from __future__ import annotations

import collections
import contextlib
import io
import os
import resource
import shutil
import sys
import tempfile
import threading
import time



def main() -> None:
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--data-dir")
    ap.add_argument("--tree", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.tree))
    data = args.data_dir or tempfile.mkdtemp(prefix="rivulet-stages-")
    spent: collections.Counter = collections.Counter()

    def wrap(owner, name, label):
        fn = getattr(owner, name, None)
        if fn is None:
            return

        def timed(*a, **k):
            t = time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                spent[label(threading.current_thread().name) if callable(label) else label] += time.thread_time() - t
        setattr(owner, name, timed)

    t0 = time.process_time()
    from engine import output, runtime, stream
    from engine import cli as cli_module
    from engine.cli import main as cli
    from engine.ingest import replay
    from engine.read import snapshot
    from engine.stats import operators
    from engine.store import duck
    spent["main: imports"] = time.process_time() - t0
    wrap(replay.ReplaySource, "next_batch", "ingest: read + parse (Python side)")
    wrap(replay.ReplaySource, "_read_parse", lambda thread: "read-ahead thread: read + parse (Python side)"
         if thread.startswith("rivulet-read-ahead") else "ingest: read + parse / the first block")
    wrap(stream.Stream, "prepare", "ingest: prepare")
    wrap(operators, "chunk_of", "ingest: prepare / numeric matrix + moments")
    wrap(operators, "partial", "ingest: prepare / bucket + group partials")
    wrap(stream.Stream, "commit", "writer: commit")
    wrap(duck.DuckStore, "commit", "writer: commit / store: DuckDB statements + segment file")
    wrap(duck.DuckStore, "_segment", "writer: commit / store / segment file")
    wrap(operators.Operators, "add", "writer: commit / merge into window, buckets, groups")
    wrap(stream.Stream, "publish", "writer: publish snapshot")
    wrap(runtime.Engine, "add_replay", "main: open file, infer columns, create stream")
    wrap(snapshot.Snapshot, "to_json", "main: snapshot JSON")
    wrap(cli_module, "print_value", "main: snapshot JSON")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            cli(["replay", args.file, "--window-rows", "10000", "--data-dir", data, "--json"])
    finally:
        if not args.data_dir:
            shutil.rmtree(data, ignore_errors=True)
    r = resource.getrusage(resource.RUSAGE_SELF)
    total = r.ru_utime + r.ru_stime
    spent["native threads (pyarrow CSV, DuckDB) and the rest"] = total - sum(
        v for k, v in spent.items() if " / " not in k)
    print(f"\n{args.file}: process CPU {total:.2f} s; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print("| stage | CPU s | % |\n|---|---:|---:|")
    for k in sorted(spent, key=lambda k: (k.split(":")[0], k)):
        print(f"| {k} | {spent[k]:.2f} | {100 * spent[k] / total:.0f} |")


if __name__ == "__main__":
    main()
