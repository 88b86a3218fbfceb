"""CM3 data job on Apache Beam: readers, the job graph, shard writer/manifest/verify, the `cm3-data` CLI.

Public names are imported lazily, so `import pipeline.view` (or the CLI's --help) does not load Beam.
"""

from importlib import import_module

_EXPORTS = {
    "Hygiene": "pipeline.hygiene",
    "JobOptions": "pipeline.graph",
    "build_pipeline": "pipeline.graph",
    "read_input": "pipeline.readers",
    "verify": "pipeline.shards",
    "main": "pipeline.cli",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
