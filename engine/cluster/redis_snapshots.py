"""The cluster Snapshots: a Redis hash per stream (`rivulet:{stream}:snapshot`), a field per partition.

A partition worker publishes its part after every batch: counts, the configured window's and the
cumulative `Moments`, the window's group-by partials and its log and committed seqs (`p{n}`, small);
its tumbling-window buckets go in `p{n}:b{width}`, one field per width, when it commits (about once a
second; they are the large data). `latest` reads the small parts and merges them into one `Snapshot`:
moments and group-by statistics merge exactly across partitions (Chan et al.) in one vectorised pass over
the parts' stacked blocks; the buckets of a width are read and merged only when a view asks for it.

A part is a length-prefixed JSON header followed by raw little-endian arrays, each Moments one flat block
in a fixed slot order, so reading 256 of them costs 256 `json.loads`, one stack and no Moments objects.
Only the worker that holds a partition's newest claim (epoch) may write its fields: a stale worker's
publish is refused by a Lua check. Snapshot writes are not logged to the AOF (they are rebuilt, not replayed).
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from ..read.snapshot import Snapshot, group_partial, keyed_dict
from ..stats.buckets import KEEP, _newest
from ..stats.groups import KeyedStats, merge_many
from ..stats.moments import _PAIRS as PAIR_SLOTS, Moments, merge_stacked
from ..stats.operators import GroupCodes, WindowSpec
from ..stats.windows import last_rows, last_seconds

MOMENT_SLOTS = Moments.__slots__
KEYED = ("keys", "n", "mean", "m2", "min", "max")
KEEP_BUCKETS = 720

# Only the partition's newest claimer writes (the owners hash holds its epoch). The writes skip the AOF and
# replicas (REPL_NONE): a snapshot is rebuilt from Delta by the worker that restores the partition, so the log's
# fsync on every write (appendfsync always) is not paid for parts sent every 50 ms and 4.5 MB of buckets a
# commit (Redis CPU: 0.30 -> 0.05 ms a part, 10 -> 7 ms the buckets; a WATCH/MULTI instead goes to the AOF).
_PUBLISH = """
redis.set_repl(redis.REPL_NONE)
local owner = redis.call('HGET', KEYS[2], ARGV[1])
if owner == ARGV[2] then
  for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  return 1
end
return 0
"""


def snapshot_key(stream: str) -> str:
    return f"rivulet:{stream}:snapshot"


def owners_key(stream: str) -> str:
    """Per partition, the epoch of the worker that claimed it last (the only one that may publish)."""
    return f"rivulet:{stream}:owners"


def tasks_key(stream: str) -> str:
    """Per part, the Dask key of the task the engine runs for it now (a stale task may not claim it)."""
    return f"rivulet:{stream}:tasks"


# --- the part codec ----------------------------------------------------------------------
def pack(header: dict, arrays: dict[str, np.ndarray]) -> bytes:
    meta, body, offset = [], [], 0
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        meta.append([name, a.dtype.str, list(a.shape), offset])
        body.append(a.tobytes())
        offset += a.nbytes
    head = json.dumps({**header, "arrays": meta}).encode()
    return len(head).to_bytes(4, "little") + head + b"".join(body)


def unpack(blob: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    size = int.from_bytes(blob[:4], "little")
    header = json.loads(blob[4:4 + size])
    start = 4 + size
    arrays = {}
    for name, dtype, shape, offset in header.pop("arrays"):
        dt = np.dtype(dtype)
        count = math.prod(shape)         # not np.prod: a numpy call per array was most of a merge's time
        arrays[name] = np.frombuffer(blob, dt, count, start + offset).reshape(shape)
    return header, arrays


def _block(m: Moments) -> np.ndarray:
    """A Moments as one flat array, its slots in a fixed order: a reader stacks many parts' blocks at once."""
    return np.concatenate([getattr(m, name).ravel() for name in MOMENT_SLOTS])


def _unblock(stack: np.ndarray, k: int, pairs: int) -> dict[str, np.ndarray]:
    """Stacked blocks (parts, length) -> each slot stacked on axis 0 (merge_stacked's input)."""
    out, at = {}, 0
    for name in MOMENT_SLOTS:
        shape = (pairs, pairs) if name in PAIR_SLOTS else (k,)
        size = math.prod(shape)
        out[name] = stack[:, at:at + size].reshape(len(stack), *shape)
        at += size
    return out


def _keyed_arrays(prefix: str, ks: KeyedStats) -> dict:
    return {f"{prefix}.{f}": getattr(ks, f) for f in KEYED}


def _keyed(prefix: str, arrays: dict) -> KeyedStats:
    return KeyedStats(*(arrays[f"{prefix}.{f}"] for f in KEYED))


def window_chunks(snap: Snapshot, newest: float | None) -> list:
    """The chunks of the configured window, ending at `newest` (the stream's newest event time)."""
    w = snap.window_spec
    if w.kind == "count":
        return last_rows(snap.chunks, int(w.size))
    now = time.time() if w.clock == "ingest" else newest
    return last_seconds(snap.chunks, w.size, w.clock, now) if now is not None and np.isfinite(now) else []


def encode_part(snap: Snapshot, extra: dict) -> bytes:
    """A partition's small part: counts, window and cumulative moments, the window's groups, and what a
    reader needs to merge its buckets (widths, bucket shift, group labels) without reading them."""
    codes = snap.codes
    header = {"stream": snap.stream, "seq": snap.seq, "columns": snap.columns, "window": snap.window_spec.to_json(),
              "window_rows": snap.window_rows, "counts": snap.counts, "source": snap.source,
              "pipeline": snap.pipeline, "pipeline_from": snap.pipeline_from, "pipeline_error": snap.pipeline_error,
              "model": snap.model,
              "state": snap.state, "error": snap.error, "created": snap.created, "group_column": snap.group_column,
              "time_column": snap.time_column, "pairs": snap.window_moments.pairs,
              "cpairs": snap.cumulative_moments.pairs,
              "widths": sorted(snap.series), "group_widths": sorted(snap.groups),
              "labels": list(codes.labels) if codes else [], "slots": codes.slots if codes else 0, **extra}
    k = len(snap.columns)
    arrays = {"schema": np.frombuffer(snap.schema.serialize().to_pybytes(), np.uint8),
              "w": _block(snap.window_moments), "c": _block(snap.cumulative_moments),
              "shift": np.broadcast_to(np.asarray(snap.bucket_shift, np.float64), (k,)),
              "throughput": np.asarray(snap.throughput, np.int64).reshape(-1, 2)}
    if snap.group_column and snap.chunks:
        chunks = window_chunks(snap, extra.get("newest"))
        if chunks:
            ks, header["wg_labels"] = group_partial(chunks, snap.group_column)
            arrays.update(_keyed_arrays("wg", ks))
    return pack(header, arrays)


def encode_buckets(snap: Snapshot) -> dict[str, bytes]:
    """A partition's tumbling-window buckets, one blob per width and kind (`s{w}` the series, `g{w}` bucket x
    group; relative to its shift): a reader fetches and merges only what a view asks for."""
    k = len(snap.columns)
    return {f"{kind}{w}": pack({"k": k}, _keyed_arrays(f"{kind}{w}", ks))
            for kind, widths in (("s", snap.series), ("g", snap.groups)) for w, ks in widths.items()}


# --- the merge ---------------------------------------------------------------------------------
def merge_parts(stream: str, parts: list[tuple[dict, dict]], fetch=None) -> Snapshot | None:
    """One Snapshot from every partition's part: what `latest` returns and the pages read. Moments merge
    in one vectorised pass over the parts' stacked blocks; buckets (the large data) are merged one width at
    a time when a view asks, from `fetch(name)` -> each part's blob (`s10`: the 10 s series; None: none)."""
    if not parts:
        return None
    heads = [h for h, _ in parts]
    # while a new pipeline version reaches the partitions one by one, the parts that run it lead
    main = max(heads, key=lambda h: (bool(h["columns"]), h["pipeline"]))
    columns, k = main["columns"], len(main["columns"])
    pairs = main.get("pairs", k)
    size = len(next(a for h, a in parts if h is main)["w"])
    same = [(h, a) for h, a in parts if h["columns"] == columns and len(a["w"]) == size]
    counts = {key: sum(h["counts"][key] for h in heads) for key in heads[0]["counts"]}
    window = WindowSpec.from_json(main["window"])
    schema = pa.ipc.read_schema(pa.py_buffer(same[0][1]["schema"].tobytes()))
    states = {h["state"] for h in heads}
    state = "error" if "error" in states else "restoring" if "restoring" in states else \
        "running" if states - {"ended"} else "ended"
    errors = [h["error"] for h in heads if h["error"]]
    buckets = MergedBuckets(same, k, fetch) if fetch is not None and k else None
    return Snapshot(
        stream, sum(h["seq"] for h in heads), columns, schema, window,
        merge_stacked(_unblock(np.stack([a["w"] for _, a in same]), k, pairs), k), sum(h["window_rows"] for h, _ in same),
        merge_stacked(_unblock(np.stack([a["c"] for _, a in same]), k, main.get("cpairs", pairs)), k), counts, _merged_source(heads),
        max(h["pipeline"] for h in heads), pipeline_from=min(h["pipeline_from"] for h in heads),
        pipeline_error=next((h["pipeline_error"] for h in heads if h["pipeline_error"]), None),
        series=buckets.view("s") if buckets else {}, groups=buckets.view("g") if buckets else {},
        codes=buckets.codes if buckets else None, group_column=main["group_column"],
        time_column=main["time_column"], bucket_shift=buckets.shift if buckets else 0.0,
        throughput=_merged_throughput([a["throughput"] for _, a in parts]),
        state=state, error="; ".join(errors) or None, window_groups=_merge_window_groups(same, columns, k),
        model=merged_model(heads))


def merged_model(heads: list[dict]) -> dict | None:
    """The deployed model's status over the partitions: rows predicted and labelled, drift alarms added up;
    the live scores (each partition's over its own last labelled rows) averaged by the rows they cover,
    which is exact with one partition; the score curve and drift rows are partition 0's."""
    models = [(h, h.get("model")) for h in sorted(heads, key=lambda h: h["partition"]) if h.get("model")]
    deployed = [(h, m) for h, m in models if m.get("deployed")]
    if not deployed:
        return next((m for _, m in models), None)
    first_head, first = deployed[0]
    out = {**first, "predicted": sum(m["predicted"] for _, m in deployed),
           "labelled": sum(m.get("labelled", 0) for _, m in deployed),
           "drifts": sum(m.get("drifts", 0) for _, m in deployed),
           "drift": any(m.get("drift") for _, m in deployed),
           "window": sum(m.get("window", 0) for _, m in deployed),
           "error": next((m["error"] for _, m in models if m.get("error")), None),
           "curve": first_head.get("curve", []), "drift_rows": first_head.get("drift_rows", []),
           "window_size": first_head.get("window_size", 1000)}
    for key in {first.get("metric"), "accuracy", "mae"} - {None}:
        scored = [(m[key], m.get("window", 0)) for _, m in deployed if m.get(key) is not None]
        weight = sum(w for _, w in scored)
        out[key] = sum(v * w for v, w in scored) / weight if weight else None
    return out


def _merged_source(heads: list[dict]) -> dict:
    src = [h["source"] for h in heads]
    return {"kind": "log", "state": heads[0]["state"] if len({h["state"] for h in heads}) == 1 else "running",
            "rows_per_s": round(sum(s.get("rows_per_s", 0.0) for s in src), 1),
            "lag_s": max((s.get("lag_s", 0.0) for s in src), default=0.0),
            "partitions": [{"partition": h["partition"], "seq": h["committed"], "read": h["read"]}
                           for h in sorted(heads, key=lambda h: h["partition"])]}


def _merged_throughput(parts: list[np.ndarray]) -> tuple:
    """(second, rows) summed over the partitions."""
    both = np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)
    seconds, at = np.unique(both[:, 0], return_inverse=True)
    return tuple(zip(seconds.tolist(), np.bincount(at, both[:, 1], len(seconds)).astype(np.int64).tolist()))


def _merge_window_groups(parts, columns: list[str], k: int) -> dict | None:
    labels: dict[str, int] = {}
    keyed = []
    for h, a in parts:
        if "wg_labels" not in h:
            continue
        ks = _keyed("wg", a)
        new = np.array([labels.setdefault(label, len(labels)) for label in h["wg_labels"]], np.int64)
        keyed.append(KeyedStats(new, ks.n, ks.mean, ks.m2, ks.min, ks.max))
    if not keyed:
        return None
    merged = merge_many(keyed, k)
    names = {code: label for label, code in labels.items()}
    return keyed_dict(merged, [names[int(c)] for c in merged.keys], columns)


class MergedBuckets:
    """The partitions' tumbling-window buckets, merged one width at a time on first use (then kept):
    reading a snapshot costs nothing for them, a chart of one width merges that width only."""

    def __init__(self, parts: list[tuple[dict, dict]], k: int, fetch):
        self.parts, self.k, self.fetch = parts, k, fetch
        self.shift = parts[0][1]["shift"].copy()
        self.widths = parts[0][0]["widths"]
        self.group_widths = parts[0][0]["group_widths"]
        self.codes = GroupCodes()
        self.remaps = [_remap(self.codes, h) for h, _ in parts]
        self.merged: dict[tuple[str, int], KeyedStats] = {}

    def view(self, kind: str) -> "_Widths":
        return _Widths(self, kind, self.widths if kind == "s" else self.group_widths)

    def get(self, kind: str, width: int) -> KeyedStats:
        if (kind, width) not in self.merged:
            self.merged[kind, width] = self._merge(kind, width)
        return self.merged[kind, width]

    def _merge(self, kind: str, w: int) -> KeyedStats:
        name, merged, slots = f"{kind}{w}", [], self.codes.slots
        for (h, a), blob, remap in zip(self.parts, self.fetch(name), self.remaps):
            if blob is None:
                continue
            head, b = unpack(blob)
            if head["k"] != self.k or f"{name}.keys" not in b or (kind == "g" and not h["slots"]):
                continue
            ks = _shifted(_keyed(name, b), a["shift"] - self.shift)    # partitions shift by their first batch
            if kind == "g":
                ks = KeyedStats(ks.keys // h["slots"] * slots + remap[ks.keys % h["slots"]],
                                ks.n, ks.mean, ks.m2, ks.min, ks.max)
            merged.append(ks)
        keep = KEEP.get(w, KEEP_BUCKETS)
        return _newest(merge_many(merged, self.k), keep, slots if kind == "g" else 1)


class _Widths(Mapping):
    """Snapshot.series / .groups of merged buckets: width -> KeyedStats, merged when looked up."""

    def __init__(self, buckets: MergedBuckets, kind: str, widths: list[int]):
        self.buckets, self.kind, self.widths = buckets, kind, list(widths)

    def __getitem__(self, width: int) -> KeyedStats:
        if width not in self.widths:
            raise KeyError(width)
        return self.buckets.get(self.kind, width)

    def __iter__(self):
        return iter(self.widths)

    def __len__(self) -> int:
        return len(self.widths)


def _shifted(ks: KeyedStats, by: np.ndarray) -> KeyedStats:
    """Bucket statistics relative to another shift (partitions shift by their own first batch)."""
    if not np.any(by):
        return ks
    return KeyedStats(ks.keys, ks.n, ks.mean + by, ks.m2, ks.min + by, ks.max + by)


def _remap(codes: GroupCodes, header: dict) -> np.ndarray:
    """A part's group codes -> the merged codes (labels in the order the parts list them)."""
    slots = header["slots"] or codes.slots
    remap = np.arange(slots, dtype=np.int64)
    for i, label in enumerate(header["labels"]):
        remap[i] = codes._code(label)
    remap[slots - 2], remap[slots - 1] = codes.other, codes.missing
    return remap


# --- the seam --------------------------------------------------------------------------------
class RedisSnapshots:
    """Snapshots over Redis. A partition worker (partition, epoch given) publishes its part; anyone
    reads the merge with `latest`. `extra()` adds the worker's log and committed seqs to each part."""

    def __init__(self, redis, partition: int | None = None, epoch: int = 0, extra=None):
        self.redis = redis
        self.partition = partition
        self.epoch = epoch
        self.extra = extra or (lambda: {})
        self.last: Snapshot | None = None
        self._script = redis.register_script(_PUBLISH)

    def publish(self, stream: str, snapshot: Snapshot) -> None:
        self.last = snapshot
        part = encode_part(snapshot, {"partition": self.partition, **self.extra()})
        self._write(stream, {f"p{self.partition}": part})

    def publish_buckets(self, stream: str) -> None:
        if self.last is not None and self.last.columns:
            self._write(stream, {f"p{self.partition}:{name}": blob for name, blob in encode_buckets(self.last).items()})

    def _write(self, stream: str, fields: dict) -> None:
        args = [f"p{self.partition}", str(self.epoch)]
        for name, value in fields.items():
            args += [name, value]
        if not self._script(keys=[snapshot_key(stream), owners_key(stream)], args=args):
            from .delta_store import Fenced
            raise Fenced(f"partition {self.partition} of {stream} was claimed by another worker")

    def latest(self, stream: str) -> Snapshot | None:
        """The merge of the partitions' small parts; their buckets are read when a view asks for a width."""
        key = snapshot_key(stream)
        names = [f for f in self.redis.hkeys(key) if b":" not in f]
        parts = [unpack(v) for v in self.redis.hmget(key, names) if v is not None] if names else []

        def fetch(name: str) -> list:
            return self.redis.hmget(key, [f"p{h['partition']}:{name}" for h, _ in parts])
        return merge_parts(stream, parts, fetch)

    def forget(self, stream: str) -> None:
        self.redis.delete(snapshot_key(stream))
