"""The cluster Snapshots: a Redis hash per stream (`rivulet:{stream}:snapshot`), a field per partition.

A partition worker publishes its part after every batch: counts, the configured window's and the
cumulative `Moments`, the window's group-by partials and its log and committed seqs (`p{n}`, small);
its tumbling-window buckets go in `p{n}:buckets` when it commits (about once a second, they are larger).
`latest` reads every field and merges them into one `Snapshot`: moments, buckets and group-by
statistics merge exactly across partitions (Chan et al.), in one vectorised pass however many parts.

A part is a length-prefixed JSON header followed by raw little-endian arrays, so reading 256 of them
costs 256 `json.loads` and no copies. Only the worker that holds a partition's newest claim (epoch)
may write its fields: a stale worker's publish is refused by a Lua check.
"""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pyarrow as pa

from ..read.snapshot import Snapshot, group_partial, keyed_dict
from ..stats.buckets import _newest
from ..stats.groups import KeyedStats, merge_many
from ..stats.moments import Moments, merge_all
from ..stats.operators import GroupCodes, WindowSpec
from ..stats.windows import last_rows, last_seconds

MOMENT_SLOTS = Moments.__slots__
KEYED = ("keys", "n", "mean", "m2", "min", "max")
KEEP_BUCKETS = 720

_PUBLISH = """
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


def _moments_arrays(prefix: str, m: Moments) -> dict:
    return {f"{prefix}.{s}": getattr(m, s) for s in MOMENT_SLOTS}


def _moments(prefix: str, arrays: dict, k: int) -> Moments:
    m = Moments.__new__(Moments)
    for s in MOMENT_SLOTS:
        setattr(m, s, arrays[f"{prefix}.{s}"])
    return m if m.k == k else Moments(k)


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
    """A partition's small part: counts, window and cumulative moments, the window's groups."""
    header = {"stream": snap.stream, "seq": snap.seq, "columns": snap.columns, "window": snap.window_spec.to_json(),
              "window_rows": snap.window_rows, "counts": snap.counts, "source": snap.source,
              "pipeline": snap.pipeline, "pipeline_from": snap.pipeline_from, "pipeline_error": snap.pipeline_error,
              "state": snap.state, "error": snap.error, "created": snap.created, "group_column": snap.group_column,
              "time_column": snap.time_column, "throughput": list(snap.throughput), **extra}
    arrays = {"schema": np.frombuffer(snap.schema.serialize().to_pybytes(), np.uint8),
              **_moments_arrays("w", snap.window_moments), **_moments_arrays("c", snap.cumulative_moments)}
    if snap.group_column and snap.chunks:
        chunks = window_chunks(snap, extra.get("newest"))
        if chunks:
            ks, header["wg_labels"] = group_partial(chunks, snap.group_column)
            arrays.update(_keyed_arrays("wg", ks))
    return pack(header, arrays)


def encode_buckets(snap: Snapshot) -> bytes:
    """A partition's tumbling-window buckets (series and bucket x group), relative to its shift."""
    k = len(snap.columns)
    arrays = {"shift": np.broadcast_to(np.asarray(snap.bucket_shift, np.float64), (k,))}
    for w, ks in snap.series.items():
        arrays.update(_keyed_arrays(f"s{w}", ks))
    for w, ks in snap.groups.items():
        arrays.update(_keyed_arrays(f"g{w}", ks))
    header = {"widths": sorted(snap.series), "group_widths": sorted(snap.groups),
              "labels": list(snap.codes.labels) if snap.codes else [],
              "slots": snap.codes.slots if snap.codes else 0, "k": k}
    return pack(header, arrays)


# --- the merge ---------------------------------------------------------------------------------
def merge_parts(stream: str, parts: list[tuple[dict, dict]], buckets: list[tuple[dict, dict]]) -> Snapshot | None:
    """One Snapshot from every partition's part: what `latest` returns and the pages read."""
    if not parts:
        return None
    heads = [h for h, _ in parts]
    main = next((h for h in heads if h["columns"]), heads[0])
    columns, k = main["columns"], len(main["columns"])
    same = [(h, a) for h, a in parts if h["columns"] == columns]
    counts = {key: sum(h["counts"][key] for h in heads) for key in heads[0]["counts"]}
    window = WindowSpec.from_json(main["window"])
    schema = pa.ipc.read_schema(pa.py_buffer(next(a for h, a in same)["schema"].tobytes()))
    states = {h["state"] for h in heads}
    state = "error" if "error" in states else "restoring" if "restoring" in states else \
        "running" if states - {"ended"} else "ended"
    errors = [h["error"] for h in heads if h["error"]]
    series, groups, codes, shift = _merge_buckets(buckets, columns, k)
    return Snapshot(
        stream, sum(h["seq"] for h in heads), columns, schema, window,
        merge_all([_moments("w", a, k) for _, a in same], k), sum(h["window_rows"] for h, _ in same),
        merge_all([_moments("c", a, k) for _, a in same], k), counts, _merged_source(heads),
        max(h["pipeline"] for h in heads), pipeline_from=min(h["pipeline_from"] for h in heads),
        pipeline_error=next((h["pipeline_error"] for h in heads if h["pipeline_error"]), None),
        series=series, groups=groups, codes=codes, group_column=main["group_column"],
        time_column=main["time_column"], bucket_shift=shift, throughput=_merged_throughput(heads),
        state=state, error="; ".join(errors) or None, window_groups=_merge_window_groups(same, columns, k))


def _merged_source(heads: list[dict]) -> dict:
    src = [h["source"] for h in heads]
    return {"kind": "log", "state": heads[0]["state"] if len({h["state"] for h in heads}) == 1 else "running",
            "rows_per_s": round(sum(s.get("rows_per_s", 0.0) for s in src), 1),
            "lag_s": max((s.get("lag_s", 0.0) for s in src), default=0.0),
            "partitions": [{"partition": h["partition"], "seq": h["committed"], "read": h["read"]}
                           for h in sorted(heads, key=lambda h: h["partition"])]}


def _merged_throughput(heads: list[dict]) -> tuple:
    per: dict[int, int] = {}
    for h in heads:
        for second, n in h["throughput"]:
            per[second] = per.get(second, 0) + n
    return tuple(sorted(per.items()))


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


def _merge_buckets(buckets, columns: list[str], k: int):
    parts = [(h, a) for h, a in buckets if h["k"] == k and k]
    if not parts:
        return {}, {}, None, 0.0
    shift = parts[0][1]["shift"].copy()
    codes = GroupCodes()
    series, groups = {}, {}
    for w in parts[0][0]["widths"]:
        series[w] = _newest(merge_many([_shifted(_keyed(f"s{w}", a), a["shift"] - shift)
                                        for h, a in parts if f"s{w}.keys" in a], k), KEEP_BUCKETS)
    remaps = [_remap(codes, h) for h, _ in parts]
    slots = codes.slots
    for w in parts[0][0]["group_widths"]:
        merged = []
        for (h, a), remap in zip(parts, remaps):
            if f"g{w}.keys" not in a or not h["slots"]:
                continue
            ks = _shifted(_keyed(f"g{w}", a), a["shift"] - shift)
            keys = ks.keys // h["slots"] * slots + remap[ks.keys % h["slots"]]
            merged.append(KeyedStats(keys, ks.n, ks.mean, ks.m2, ks.min, ks.max))
        groups[w] = _newest(merge_many(merged, k), KEEP_BUCKETS, slots)
    return series, groups, codes, shift


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
            self._write(stream, {f"p{self.partition}:buckets": encode_buckets(self.last)})

    def _write(self, stream: str, fields: dict) -> None:
        args = [f"p{self.partition}", str(self.epoch)]
        for name, value in fields.items():
            args += [name, value]
        if not self._script(keys=[snapshot_key(stream), owners_key(stream)], args=args):
            from .delta_store import Fenced
            raise Fenced(f"partition {self.partition} of {stream} was claimed by another worker")

    def latest(self, stream: str) -> Snapshot | None:
        fields = self.redis.hgetall(snapshot_key(stream))
        parts = [unpack(v) for f, v in fields.items() if not f.endswith(b":buckets")]
        buckets = [unpack(v) for f, v in fields.items() if f.endswith(b":buckets")]
        return merge_parts(stream, parts, buckets)

    def forget(self, stream: str) -> None:
        self.redis.delete(snapshot_key(stream))
