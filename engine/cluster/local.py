"""`--cluster local`: redis-server and a Dask LocalCluster as this process's children, on loopback.

Both are stopped on exit, by PID (the servers never outlive the command that started them).
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field

from ..errors import UserError

REDIS_START_TIMEOUT = 10.0
ALLOWED_FAILURES = 100      # Dask reruns a partition task this often when its worker dies (default 3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RedisServer:
    """A redis-server child: the log (AOF, fsync on every write) and the snapshot bus."""
    folder: str
    port: int = 0
    pid: int = 0
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        exe = shutil.which("redis-server")
        if exe is None:
            raise UserError("cluster mode needs redis-server (Debian: apt-get install redis-server)")
        os.makedirs(self.folder, exist_ok=True)
        self.port = self.port or free_port()
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.folder,
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             # the AOF is rewritten when it doubles, but not before it holds this much: below it, a rewrite
             # mostly copies log entries the workers are about to trim (at 64mb, Redis's default, a third of
             # its CPU in a fast replay)
             "--auto-aof-rewrite-min-size", "512mb", "--daemonize", "no",
             "--logfile", os.path.join(self.folder, "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)      # Ctrl-C in the terminal reaches us, we stop it in order
        self.pid = self.proc.pid
        deadline = time.time() + REDIS_START_TIMEOUT
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise UserError(f"redis-server exited at start; see {os.path.join(self.folder, 'redis.log')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise UserError(f"redis-server did not answer on port {self.port} within {REDIS_START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        if self.pid:
            stop_pid(self.pid, self.proc)
            self.pid = 0


def stop_pid(pid: int, proc: subprocess.Popen | None = None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; reaps a child we started."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return
        if proc is None and not _alive(pid):
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc is not None:
        proc.wait(timeout=5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start_dask(workers: int = 2):
    """A Dask LocalCluster on 127.0.0.1: the scheduler in this process, `workers` worker processes."""
    import dask
    from distributed import LocalCluster
    # Dask's own upkeep costs CPU every second whatever runs: the workers' statistical profiler samples every
    # thread 100 times a second, the event loops tick every 20 ms (a check for blocked loops), the memory and
    # system monitors poll psutil 10 and 2 times a second. Off or slower here (an idle worker 28 -> 3 ms of
    # CPU a second, the scheduler 31 -> 6); the memory limit is still enforced, once a second.
    # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also turns off glibc's adaptive mmap
    # threshold: every array over 128 KB is then a fresh mmap, its pages faulted in and zeroed, and a partition
    # worker spent 2.4 CPU s a million rows instead of 1.7. Unset, its memory behaves as in the embedded engine.
    dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                     "distributed.worker.daemon": False, "distributed.worker.profile.enabled": False,
                     "distributed.admin.tick.interval": "1s", "distributed.worker.memory.monitor-interval": "1s",
                     "distributed.admin.system-monitor.interval": "5s",
                     "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=None, silence_logs=logging.ERROR)


def worker_pids(client) -> dict[str, int]:
    """Worker address -> PID of its process (what a test kills, or stop() reaps)."""
    return client.run(os.getpid)


def nanny_pids(cluster) -> list[int]:
    return [w.process.process.pid for w in cluster.workers.values()
            if getattr(w, "process", None) is not None and w.process.process is not None]


class LocalServers:
    """redis-server + a Dask LocalCluster for one command; `with LocalServers(folder) as s: s.redis_url ...`."""

    def __init__(self, folder: str, workers: int = 2, log: bool = True):
        self.folder = folder
        self.workers = workers
        self.redis = RedisServer(os.path.join(folder, "redis")) if log else None
        self.dask = None
        self.pids: list[int] = []

    @property
    def redis_url(self) -> str:
        return self.redis.url

    @property
    def scheduler(self) -> str:
        return self.dask.scheduler_address

    def start(self) -> "LocalServers":
        if self.redis is not None:
            self.redis.start()
        try:
            self.dask = start_dask(self.workers)
            self.pids = nanny_pids(self.dask)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.dask is not None:
            try:
                self.dask.close(timeout=20)
            except Exception as e:          # a worker that will not stop is killed below
                logging.getLogger("rivulet").warning("closing the Dask cluster: %s", e)
            for pid in self.pids:
                if _alive(pid):
                    stop_pid(pid)
            self.dask = None
        if self.redis is not None:
            self.redis.stop()

    def __enter__(self) -> "LocalServers":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ServersProcess:
    """LocalServers in a child process of their own (`python -m engine.cluster.local FOLDER`), for a
    process whose `__main__` must not be re-imported by Dask's spawned workers (a Streamlit server runs
    its page scripts as `__main__`). The child stops the servers when we close its stdin, or when we die."""

    def __init__(self, folder: str, workers: int = 2):
        self.folder = folder
        self.workers = workers
        self.proc: subprocess.Popen | None = None
        self.redis_url = self.scheduler = ""

    def start(self) -> "ServersProcess":
        import json
        import sys
        os.makedirs(self.folder, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "engine.cluster.local", self.folder, str(self.workers)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(os.path.join(self.folder, "servers.log"), "ab"),
                                     cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            raise UserError(f"the local cluster did not start; see {os.path.join(self.folder, 'servers.log')}")
        got = json.loads(line)
        if "error" in got:
            self.proc.wait(timeout=30)
            raise UserError(got["error"])
        self.redis_url, self.scheduler = got["log"], got["scheduler"]
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stop_pid(self.proc.pid, self.proc)
        self.proc = None

    def __enter__(self) -> "ServersProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _serve(folder: str, workers: int) -> None:
    """The child of ServersProcess: start, say where, wait for stdin to close (or SIGTERM), stop."""
    import json
    import sys
    def stop(*_):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)
    try:
        servers = LocalServers(folder, workers).start()
    except UserError as e:
        print(json.dumps({"error": str(e)}), flush=True)
        return
    try:
        print(json.dumps({"log": servers.redis_url, "scheduler": servers.scheduler}), flush=True)
        sys.stdin.read()
    finally:
        servers.stop()


if __name__ == "__main__":
    import sys
    _serve(sys.argv[1], int(sys.argv[2]))
