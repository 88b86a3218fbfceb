"""Running the CM3 data job on other runners: Dask on a local/remote cluster, Dataflow (launcher + worker
packaging), Flink/Spark through the PortableRunner (dataflow/README.md).

Public names are imported lazily, so `python -m dataflow.launch` runs its module only once.
"""

from importlib import import_module

_EXPORTS = {"dataflow_args": "dataflow.launch", "local_dask_cluster": "dataflow.dask_local"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dataflow' has no attribute {name!r}")
