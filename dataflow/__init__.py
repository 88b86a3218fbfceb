"""Running the CM3 data job on other runners: Dask on a local/remote cluster, Dataflow (launcher + worker
packaging), Flink/Spark through the PortableRunner (docs/runners.md)."""

from .dask_local import local_dask_cluster
from .launch import dataflow_args

__all__ = ["dataflow_args", "local_dask_cluster"]
