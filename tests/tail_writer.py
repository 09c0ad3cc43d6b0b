"""A writer process for the tail tests and benchmark: appends rows with unique ids and rotates.

    python tests/tail_writer.py DIR --rows N [--format csv|jsonl] [--rotate rename|copytruncate]
        [--every ROWS] [--rotated NAME_TEMPLATE] [--rate ROWS_PER_S] [--start ID] [--seed S] [--manifest FILE]

Rows are `id,x` (CSV, header on every new file) or {"id": .., "x": ..} (JSON Lines), ids counting
up from --start. Each write is a random-sized slice of the byte stream, so lines are often split
across writes (a partial last line). Rotation every --every rows: `rename` moves the file to
--rotated (a template with {n}) and starts a new one; `copytruncate` copies it there and
truncates the original in place (opened O_APPEND, as loggers are). With --ts the rows carry the
write time (epoch seconds) for latency measurements. The manifest (JSON) lists each generation's
first and last id and where it ended up.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time


def rows_bytes(fmt: str, start: int, n: int, ts: bool) -> bytes:
    now = time.time()
    if fmt == "jsonl":
        if ts:
            return "".join(f'{{"id": {i}, "x": {i % 97 * 0.5}, "ts": {now:.6f}}}\n'
                           for i in range(start, start + n)).encode()
        return "".join(f'{{"id": {i}, "x": {i % 97 * 0.5}}}\n' for i in range(start, start + n)).encode()
    if ts:
        return "".join(f"{i},{i % 97 * 0.5},{now:.6f}\n" for i in range(start, start + n)).encode()
    return "".join(f"{i},{i % 97 * 0.5}\n" for i in range(start, start + n)).encode()


def header(fmt: str, ts: bool) -> bytes:
    return b"" if fmt == "jsonl" else (b"id,x,ts\n" if ts else b"id,x\n")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--name", default=None)
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--format", default="csv")
    p.add_argument("--rotate", choices=["none", "rename", "copytruncate"], default="none")
    p.add_argument("--every", type=int, default=0)
    p.add_argument("--rotated", default="{name}.{n}")
    p.add_argument("--rate", type=float, default=0.0, help="rows/s; 0 = as fast as possible")
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=50, help="rows per write on average")
    p.add_argument("--ts", action="store_true")
    p.add_argument("--pause", type=float, default=0.0, help="seconds to wait before each rotation")
    p.add_argument("--manifest")
    a = p.parse_args()
    rng = random.Random(a.seed)
    name = a.name or ("app.jsonl" if a.format == "jsonl" else "app.csv")
    path = os.path.join(a.dir, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    if os.fstat(fd).st_size == 0:
        os.write(fd, header(a.format, a.ts))
    gens, first, n_rot = [], a.start, 0
    pending = b""
    next_id, end = a.start, a.start + a.rows
    t0 = time.time()
    rotating = a.rotate != "none" and a.every > 0
    while next_id < end or pending:
        at_boundary = rotating and (next_id - a.start) % a.every == 0 and next_id > a.start
        if next_id < end and not (at_boundary and pending):
            k = min(end - next_id, max(1, int(rng.expovariate(1 / a.batch))))
            if a.every:
                k = min(k, a.every - (next_id - a.start) % a.every)
            pending += rows_bytes(a.format, next_id, k, a.ts)
            next_id += k
        # write a random part of what is pending: lines get split across writes
        cut = len(pending) if next_id >= end or rng.random() < 0.3 else rng.randint(1, len(pending))
        cut = len(pending) if at_boundary and rng.random() < 0.5 else cut
        os.write(fd, pending[:cut])
        pending = pending[cut:]
        if a.rate:
            delay = t0 + (next_id - a.start) / a.rate - time.time()
            if delay > 0:
                time.sleep(delay)
        if rotating and not pending and (next_id - a.start) % a.every == 0 and next_id < end:
            if a.pause:
                time.sleep(a.pause)
            n_rot += 1
            target = os.path.join(a.dir, a.rotated.format(name=name, n=n_rot))
            if a.rotate == "rename":
                os.rename(path, target)
                os.close(fd)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            else:
                shutil.copyfile(path, target)
                os.ftruncate(fd, 0)
            gens.append({"first": first, "last": next_id - 1, "path": target})
            first = next_id
            os.write(fd, header(a.format, a.ts))
    os.close(fd)
    gens.append({"first": first, "last": end - 1, "path": path})
    if a.manifest:
        tmp = f"{a.manifest}.{os.getpid()}.tmp"          # writers may share a folder
        with open(tmp, "w") as f:
            json.dump({"written": a.rows, "generations": gens}, f)
        os.replace(tmp, a.manifest)


if __name__ == "__main__":
    main()
