"""The embedded Compute (see seams.py): jobs in spawned processes with progress and cancel, and threads.

Jobs (training, search, comparison) run in a separate process, with progress and cancel.

The engine process has threads and an open DuckDB file, so workers start with
the "spawn" method (a fresh interpreter), never fork. The parent reads the data
and hands it over; the worker only computes and sends back progress and its
result through a pipe. The parent stores the result, so cancelling (terminating
the worker) can never leave anything half-written.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing as mp
import sys
import threading
import time
import traceback
import types
import uuid
from dataclasses import dataclass, field
from typing import Callable

from .errors import UserError

log = logging.getLogger("rivulet")
STATES = ("running", "saving", "done", "failed", "cancelled")


@dataclass
class Job:
    id: str
    kind: str
    label: str
    state: str = "running"
    done: int = 0
    total: int = 0
    message: str = "starting"
    error: str | None = None
    detail: str | None = None          # the worker's traceback for an unexpected failure
    result: object = None              # what `on_done` returned (e.g. a model id)
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("id", "kind", "label", "state", "done", "total", "message",
                                              "error", "result", "started", "finished")}

    @property
    def active(self) -> bool:
        return self.state in ("running", "saving")


def _work(registry: str, kind: str, payload, conn) -> None:
    """Worker process entry: run one task, report progress, send the result or the error."""
    tasks = importlib.import_module(registry)
    def progress(done: int, total: int, message: str) -> None:
        conn.send(("progress", done, total, message))
    try:
        result = tasks.TASKS[kind](payload, progress)
        conn.send(("done", result))
    except UserError as e:
        conn.send(("error", str(e), None))
    except Exception as e:          # anything else: keep the message and the traceback for the log
        conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))
    finally:
        conn.close()


_main_lock = threading.Lock()


@contextlib.contextmanager
def _plain_main():
    """Start workers as if from a bare interpreter.

    "spawn" re-runs the parent's __main__ in the worker. Under Streamlit (and
    AppTest) __main__ is the page script, so the worker would run the dashboard,
    open the engine's data folder and die; an empty __main__ avoids that.
    """
    with _main_lock:
        saved = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = saved


def isolated(kind: str, payload, timeout: float, tasks: str = "engine.models.tasks") -> tuple[str, object]:
    """Run one task in a spawned process and wait for it: ("done", result), ("error", message),
    ("died", exit code: minus the signal that killed it) or ("timeout", None)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_work, args=(tasks, kind, payload, child), daemon=True, name=f"rivulet-{kind}")
    with _plain_main():
        proc.start()
    child.close()
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if parent.poll(0.05):
                try:
                    msg = parent.recv()
                except EOFError:
                    break
                if msg[0] in ("done", "error"):
                    return msg[0], msg[1]
            elif not proc.is_alive() and not parent.poll(0):
                break
        else:
            return "timeout", None
        proc.join(5)
        return "died", proc.exitcode
    finally:
        parent.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)


def background(name: str, fn: Callable[[], None]) -> threading.Thread:
    """Run `fn` on a daemon thread of this process (work that needs the live engine, a backfill)."""
    thread = threading.Thread(target=fn, name=name, daemon=True)
    thread.start()
    return thread


class LocalCompute:
    """`tasks` names the module whose TASKS maps a job kind to its function (payload, progress)."""

    def __init__(self, max_running: int = 2, tasks: str = "engine.models.tasks"):
        self.tasks = tasks
        self.ctx = mp.get_context("spawn")
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.max_running = max_running
        self._procs: dict[str, mp.Process] = {}
        self._cancel: set[str] = set()

    def submit(self, kind: str, payload, label: str = "",
               on_done: Callable[[object], object] | None = None) -> str:
        """Start `kind` (a name in the tasks module's TASKS) on `payload`; `on_done(result)` runs in the parent."""
        if kind not in importlib.import_module(self.tasks).TASKS:
            raise UserError(f"unknown job kind {kind!r}")
        with self.lock:
            running = sum(j.active for j in self.jobs.values())
            if running >= self.max_running:
                raise UserError(f"{running} jobs are running already; wait for one or cancel it")
            job = Job(uuid.uuid4().hex[:10], kind, label or kind)
            self.jobs[job.id] = job
        parent, child = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=_work, args=(self.tasks, kind, payload, child), daemon=True,
                                name=f"rivulet-job-{job.id}")
        with _plain_main():
            proc.start()
        child.close()
        self._procs[job.id] = proc
        threading.Thread(target=self._watch, args=(job, proc, parent, on_done), daemon=True,
                         name=f"rivulet-watch-{job.id}").start()
        return job.id

    def _watch(self, job: Job, proc: mp.Process, conn, on_done) -> None:
        result, got = None, False
        try:
            while True:
                if job.id in self._cancel:
                    proc.terminate()
                    proc.join(5)
                    if proc.is_alive():
                        proc.kill()
                    self._finish(job, "cancelled", message="cancelled")
                    return
                if conn.poll(0.05):
                    try:
                        msg = conn.recv()
                    except EOFError:
                        break
                    if msg[0] == "progress":
                        job.done, job.total, job.message = msg[1], msg[2], msg[3]
                    elif msg[0] == "error":
                        job.error, job.detail = msg[1], msg[2]
                        if msg[2]:
                            log.error("job %s failed:\n%s", job.id, msg[2])
                        self._finish(job, "failed", message="failed")
                        return
                    else:
                        result, got = msg[1], True
                        break
                elif not proc.is_alive() and not conn.poll(0):
                    break
            proc.join(5)
            if not got:
                job.error = f"the worker process stopped unexpectedly (exit code {proc.exitcode})"
                self._finish(job, "failed", message="failed")
                return
            job.state, job.message = "saving", "saving"
            try:
                job.result = on_done(result) if on_done else result
            except UserError as e:
                job.error = str(e)
                self._finish(job, "failed", message="failed")
                return
            except Exception as e:        # storing failed: the job says so, the engine keeps going
                log.exception("storing the result of job %s failed", job.id)
                job.error = f"could not store the result: {type(e).__name__}: {e}"
                self._finish(job, "failed", message="failed")
                return
            self._finish(job, "done", message="done")
        finally:
            conn.close()
            self._procs.pop(job.id, None)

    def _finish(self, job: Job, state: str, message: str) -> None:
        job.state, job.message, job.finished = state, message, time.time()
        self._cancel.discard(job.id)

    def cancel(self, job_id: str) -> None:
        job = self.get(job_id)
        if job.state == "running":
            self._cancel.add(job_id)

    def get(self, job_id: str) -> Job:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise UserError(f"no job {job_id!r}") from None

    def list(self) -> list[Job]:
        return sorted(self.jobs.values(), key=lambda j: j.started, reverse=True)

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        job = self.get(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        while job.active:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.state} after {timeout}s")
            time.sleep(0.02)
        return job

    def background(self, name: str, fn: Callable[[], None]) -> threading.Thread:
        return background(name, fn)

    def close(self) -> None:
        for job_id in list(self._procs):
            self.cancel(job_id)
        for job in list(self.jobs.values()):
            if job.state == "running":
                try:
                    self.wait(job.id, timeout=10)
                except TimeoutError:
                    pass
