"""Cluster mode: the four seams (seams.py) on Redis Streams, Delta Lake and Dask distributed.

Nothing here is imported unless a command or the dashboard asks for a cluster (`--cluster`,
`RIVULET_CLUSTER`); the embedded engine never loads redis, dask or deltalake.

    local.py            redis-server and a Dask LocalCluster as child processes on loopback
    config.py           where the log, the scheduler and the history are (`Cluster`)
    redis_log.py        Log: one Redis stream per stream partition, an Arrow IPC entry per batch
    delta_store.py      Store: rows + position (app transaction) + state (commit metadata) in Delta Lake
    redis_snapshots.py  Snapshots: a Redis hash per stream, a field per partition; the merge
    dask_compute.py     Compute: partition workers as long Dask tasks; folds as one task each
    worker.py           one partition worker (a Dask task): log -> pipeline -> operators -> store
    replay.py           `replay --cluster`: parse at the edge, run the partitions, merge
    pipelines.py        pipeline versions and deployed models, stamped on log entries by the producer
    backfill.py         re-running a partition's stored history through a version on Dask, swapped in between batches
"""
