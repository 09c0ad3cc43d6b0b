"""Which engine the settings ask for: the embedded one, or one whose streams run on a cluster."""
from __future__ import annotations

from .cluster.config import cluster_setting
from .runtime import Engine


def open_engine(data_dir: str | None = None, demo: bool = False) -> Engine:
    """The embedded Engine; with RIVULET_CLUSTER set, a ClusterEngine on that cluster (only then are redis,
    dask and deltalake imported)."""
    setting = cluster_setting()
    if setting:
        from .cluster.engine import ClusterEngine
        return ClusterEngine(setting, data_dir, demo=demo)
    return Engine(data_dir, demo=demo)
