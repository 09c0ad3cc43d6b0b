"""`python -m engine ...`: see engine/cli.py."""
import atexit
import os
import sys

from .cli import main

if __name__ == "__main__":      # not when a spawned process (a Dask worker) re-imports the main module
    rc = main()
    # Leave without finalising the interpreter once the output is written and what we started is
    # stopped: native threads can outlive Python's state and crash the exit. Seen here: delta-rs's
    # Rust runtime (delta-rs #2184, #2706: a segfault, an abort or a hang in about 1 exit in 20), and
    # once in a CI run `predict` printing its one-line error, then "terminate called without an
    # active exception" (SIGABRT, a C++ thread pool torn down at exit). Python's own exit handlers
    # (logging, multiprocessing's children) still run first.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc or 0)
