"""`python -m engine ...`: see engine/cli.py."""
import os
import sys

from .cli import main

if __name__ == "__main__":      # not when a spawned process (a Dask worker) re-imports the main module
    rc = main()
    if "deltalake" in sys.modules:
        # A process that used delta-rs can crash while the interpreter finalises (its Rust runtime's
        # threads and thread-locals outlive Python's state: delta-rs #2184, #2706; seen here as a
        # segfault, an abort or a hang in about 1 exit in 20). The output is written and the servers we started
        # are stopped by now, so leave without finalising.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc or 0)
    sys.exit(rc)
