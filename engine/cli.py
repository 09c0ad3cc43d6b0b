"""The command line. User errors exit 2 with one line on stderr, never a traceback."""
from __future__ import annotations

import argparse
import os
import sys

from .output import print_value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:        # one line, not argparse's usage block
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m engine", description="Rivulet's streaming engine, without the dashboard.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("replay", help="replay a CSV file to its end and print the final snapshot",
                       description="Replay FILE at full speed to its end, storing rows in the data folder, "
                                   "then print the final snapshot. Run again to resume after a crash.")
    r.add_argument("file", metavar="FILE")
    _time_arguments(r)
    _window_arguments(r)
    r.add_argument("--rows-per-second", type=_positive_float, metavar="N",
                   help="release N rows a second instead of reading at full speed")
    r.add_argument("--pipeline", metavar="P.json", help="preprocessing spec to apply")
    r.add_argument("--data-dir", metavar="D", help="data folder (default $RIVULET_DATA_DIR or ./data)")
    _cluster_arguments(r)
    r.add_argument("--json", action="store_true", help="print the snapshot as JSON")

    t = sub.add_parser("tail", help="follow files another program appends to",
                       description="Follow a file, glob or folder (CSV with a header, or JSON Lines) through "
                                   "appends and rotation, resuming from the offsets stored in the data folder. "
                                   "Stops on Ctrl-C, or after --idle-exit seconds without new data, and prints "
                                   "the snapshot.")
    t.add_argument("path", metavar="PATH_OR_GLOB")
    t.add_argument("--format", choices=["csv", "jsonl"],
                   help="default: from the file names (.jsonl, .ndjson), else csv")
    _time_arguments(t)
    _window_arguments(t)
    t.add_argument("--pipeline", metavar="P.json", help="preprocessing spec to apply")
    t.add_argument("--data-dir", metavar="D", help="data folder (default $RIVULET_DATA_DIR or ./data)")
    t.add_argument("--idle-exit", type=_positive_float, metavar="SECONDS",
                   help="stop after this many seconds without new data")
    t.add_argument("--polling", action="store_true",
                   help="poll the files instead of using inotify (also RIVULET_TAIL_POLLING=1)")
    _cluster_arguments(t, batch_bytes=False)
    t.add_argument("--json", action="store_true", help="print the snapshot as JSON")

    s = sub.add_parser("status", help="list the streams stored in a data folder",
                       description="List every stream in the data folder with its counts and source position.")
    s.add_argument("--data-dir", metavar="D")
    s.add_argument("--json", action="store_true")

    q = sub.add_parser("quarantine", help="show the quarantined rows of a stream",
                       description="Print the newest quarantined rows of STREAM: position, reason, raw text.")
    q.add_argument("stream", metavar="STREAM")
    q.add_argument("--limit", type=_positive_int, default=50)
    q.add_argument("--data-dir", metavar="D")
    q.add_argument("--json", action="store_true")

    from .models.commands import add_parsers as add_model_parsers
    add_model_parsers(sub, _positive_int)
    return p


def _time_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--time-column", metavar="C",
                   help="column of dates or times that gives rows their event time (default: the first one "
                        "detected); a number column is epoch seconds, or milliseconds above 1e11")
    p.add_argument("--time-format", metavar="F",
                   help="strptime format of the time column when it is not detected, e.g. %%d/%%m/%%Y %%H:%%M "
                        "(needed when day and month could be either way round)")


def _window_arguments(p: argparse.ArgumentParser) -> None:
    w = p.add_mutually_exclusive_group()
    w.add_argument("--window-rows", type=_positive_int, metavar="N",
                   help="count window: the last N rows (default 10000)")
    w.add_argument("--window-seconds", type=_positive_float, metavar="S", help="time window: the last S seconds")
    p.add_argument("--retention-rows", type=int, default=1_000_000, metavar="N",
                   help="keep at most the newest N rows in the store (0 keeps all; default 1000000)")


def _cluster_arguments(p: argparse.ArgumentParser, batch_bytes: bool = True) -> None:
    p.add_argument("--cluster", metavar="C",
                   help="run on a cluster: local (starts redis-server and Dask here) or redis://host:port/db "
                        "with RIVULET_DASK and RIVULET_HISTORY (default $RIVULET_CLUSTER; none: embedded)")
    p.add_argument("--partitions", type=_positive_int, default=1, metavar="N",
                   help="cluster mode: spread rows round-robin over N partitions (default 1; count windows "
                        "are then per partition)")
    p.add_argument("--partition-key", metavar="COLUMN",
                   help="cluster mode: send rows with the same COLUMN value to the same partition (a stable hash) "
                        "instead of round-robin")
    if batch_bytes:
        p.add_argument("--batch-bytes", type=_positive_int, metavar="N",
                       help="cluster mode: bytes of the file per log entry (default 8388608)")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return v


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .errors import UserError
    try:
        return {"replay": cmd_replay, "tail": cmd_tail, "status": cmd_status, "quarantine": cmd_quarantine,
                "train": _models_command("cmd_train"), "predict": _models_command("cmd_predict")}[args.command](args)
    except UserError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    except Exception as e:
        import duckdb
        if isinstance(e, duckdb.Error):
            # a store that fails after it opened (damaged pages): one line, not DuckDB's traceback
            sys.stderr.write(f"error: the store in the data folder failed: {first_line(e)}\n")
            return 2
        # our fault, not the user's: still one line (what failed), and a status that tells it from a user error
        sys.stderr.write(f"error: {args.command} failed unexpectedly: {type(e).__name__}: {first_line(e)}\n")
        return 1
    except KeyboardInterrupt:
        return 130


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0]


def _models_command(name: str):
    def run(args) -> int:
        from .models import commands
        return getattr(commands, name)(args)
    return run


def _window(args):
    """The window asked for; a time window runs on event time when the stream has a time column."""
    from .stats.operators import WindowSpec
    if args.window_seconds:
        return WindowSpec("time", args.window_seconds, "event")
    return WindowSpec("count", args.window_rows or 10_000)


def _numpy_with_one_blas_thread() -> None:
    """Load numpy with OpenBLAS on one thread, as the Engine sets it anyway (runtime.single_thread_blas):
    otherwise OpenBLAS starts a thread per core at import only to have them parked (about 10-60 ms of a
    short command's start-up on a busy machine). Child processes get the environment as it was."""
    if "numpy" in sys.modules:
        return
    before = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import numpy  # noqa: F401
    finally:
        if before is None:
            del os.environ["OPENBLAS_NUM_THREADS"]
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = before


def cmd_replay(args) -> int:
    _numpy_with_one_blas_thread()
    from .errors import UserError
    from .ingest.paths import regular_file
    from .prep.pipeline import Pipeline
    from .runtime import Engine

    regular_file(args.file)
    cluster = _cluster(args)
    if cluster is not None:
        return _cluster_replay(args, cluster)
    pipeline = Pipeline.load(args.pipeline) if args.pipeline else None
    window = _window(args)
    with Engine(args.data_dir) as engine:
        name = engine.add_replay(args.file, time_column=args.time_column, time_format=args.time_format, window=window,
                                 retention_rows=args.retention_rows or None, pipeline=pipeline,
                                 speed=_speed(args))
        snap = engine.wait(name)
        if snap.pipeline_error:
            raise UserError(f"{snap.pipeline_error}; the rows were stored and counted without the pipeline")
        status = engine.wait_backfill(name)       # resumed with another spec: history is re-run through it
        if status is not None:
            if status["state"] != "done":
                raise UserError(f"the backfill did not finish: {status['error'] or status['state']}")
            snap = engine.snapshot(name)
    print_value(snap.to_json(), args.json)
    return 0


def _cluster(args) -> str | None:
    """The cluster a command runs on: --cluster, else $RIVULET_CLUSTER; None for the embedded engine."""
    value = args.cluster if args.cluster is not None else os.environ.get("RIVULET_CLUSTER")
    batch_bytes = getattr(args, "batch_bytes", None)
    if not value and (args.partitions != 1 or batch_bytes or args.partition_key):
        from .errors import UserError
        flag = "--partitions" if args.partitions != 1 else "--batch-bytes" if batch_bytes else "--partition-key"
        raise UserError(f"{flag} needs --cluster (or RIVULET_CLUSTER)")
    return value or None


def _speed(args):
    from .ingest.replay import Speed
    return Speed("rows", args.rows_per_second) if args.rows_per_second else Speed()


def _cluster_replay(args, cluster: str) -> int:
    from .cluster.replay import replay
    from .prep.pipeline import Pipeline
    out = replay(cluster, args.file, args.data_dir or _default_dir(), _window(args), args.partitions,
                 args.time_column, args.retention_rows or None, speed=_speed(args), block=args.batch_bytes,
                 pipeline=Pipeline.load(args.pipeline) if args.pipeline else None, partition_key=args.partition_key)
    print_value(out, args.json)
    return 0


def cmd_tail(args) -> int:
    import glob
    import signal
    import time

    _numpy_with_one_blas_thread()
    from .errors import UserError
    from .ingest.paths import no_nul
    from .prep.pipeline import Pipeline
    from .runtime import Engine

    no_nul(args.path)
    if not glob.has_magic(args.path) and not os.path.exists(args.path):
        raise UserError(f"no such file or folder: {args.path} (use a glob to wait for files not created yet)")
    cluster = _cluster(args)
    if cluster is not None:
        return _cluster_tail(args, cluster)
    pipeline = Pipeline.load(args.pipeline) if args.pipeline else None
    window = _window(args)
    signal.signal(signal.SIGTERM, _interrupt)
    with Engine(args.data_dir) as engine:
        name = engine.add_tail(args.path, fmt=args.format, window=window, retention_rows=args.retention_rows or None,
                               polling=True if args.polling else None, pipeline=pipeline, trusted=True,
                               time_column=args.time_column, time_format=args.time_format)
        stream = engine.streams[name]
        seen, idle_since = -1, time.monotonic()
        try:
            while True:
                time.sleep(0.05)
                if stream.error:
                    raise UserError(f"stream {name!r} stopped: {stream.error}")
                moved = stream.source.bytes + stream.done_count
                if moved != seen or stream.inflight or not stream.restored:
                    seen, idle_since = moved, time.monotonic()
                elif args.idle_exit and time.monotonic() - idle_since >= args.idle_exit and not stream.busy:
                    break       # (busy alone does not count as data: a big folder's scans keep it busy often)
        except KeyboardInterrupt:
            pass
    print_value(stream.snapshot.to_json(), args.json)
    return 0


def _cluster_tail(args, cluster: str) -> int:
    """`tail --cluster`: the stream runs on the cluster as the dashboard's do (cluster/engine.py) until
    Ctrl-C, SIGTERM or --idle-exit; then its tasks are stopped, so a rerun resumes where they stopped."""
    import signal
    import time

    from .cluster.engine import ClusterEngine
    from .prep.pipeline import Pipeline
    signal.signal(signal.SIGTERM, _interrupt)
    with ClusterEngine(cluster, args.data_dir, partitions=args.partitions) as engine:
        name = engine.add_tail(args.path, fmt=args.format, window=_window(args),
                               retention_rows=args.retention_rows or None, polling=True if args.polling else None,
                               trusted=True, time_column=args.time_column, time_format=args.time_format,
                               partition_key=args.partition_key,
                               pipeline=Pipeline.load(args.pipeline) if args.pipeline else None)
        seen, idle_since = None, time.monotonic()
        try:
            while True:
                time.sleep(0.1)
                state = engine.progress(name)
                if state != seen or not state["settled"]:
                    seen, idle_since = state, time.monotonic()
                elif args.idle_exit and time.monotonic() - idle_since >= args.idle_exit:
                    break
        except KeyboardInterrupt:
            pass
        out = engine.stop(name)
    print_value(out, args.json)
    return 0


def _interrupt(*_) -> None:
    raise KeyboardInterrupt      # SIGTERM stops a tail like Ctrl-C: drain, print the snapshot


def cmd_status(args) -> int:
    from .store.duck import DuckStore
    store = DuckStore(args.data_dir or _default_dir(), read_only=True)
    try:
        out = []
        for s in store.streams():
            st = store.state(s["id"])
            out.append({"stream": s["name"], "source": s["config"].get("source"), "path": s["config"].get("path"),
                        "rows": {"ingested": st["ingested"], "quarantined": st["quarantined"],
                                 "flagged": st["flagged"], "late": st["late"], "replayed": st["replayed"] or 0},
                        "stored": store.count(s["id"]), "offsets": store.offsets(s["id"])})
    finally:
        store.close()
    print_value(out, args.json)
    return 0


def cmd_quarantine(args) -> int:
    from .errors import UserError
    from .store.duck import DuckStore
    store = DuckStore(args.data_dir or _default_dir(), read_only=True)
    try:
        ids = {s["name"]: s["id"] for s in store.streams()}
        if args.stream not in ids:
            raise UserError(f"no stream named {args.stream!r}; streams: {', '.join(ids) or 'none'}")
        rows = store.quarantine(ids[args.stream], args.limit).to_pylist()
    finally:
        store.close()
    for r in rows:
        r["seen"] = r["seen"].isoformat()
    print_value(rows, args.json)
    return 0


def _default_dir() -> str:
    from .runtime import default_data_dir
    return default_data_dir()
