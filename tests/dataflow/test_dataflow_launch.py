"""Dataflow: launcher flags, and the job graph built offline with Dataflow options (submitted with
--dry_run when Beam's GCP extras are installed; otherwise translated to the portable proto Dataflow gets)."""

import importlib.util

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from dataflow import dataflow_args
from dataflow.launch import with_cuda_device
from pipeline.cli import beam_options, sample_inputs
from pipeline.graph import JobOptions, build_pipeline

IMAGE = "us-docker.pkg.dev/p/cm3/cm3-data-worker:0.1.0"


def test_dataflow_args():
    args = dataflow_args("proj", "us-central1", "gs://bucket/", IMAGE, job_name="cm3", max_workers=50)
    assert "--runner=DataflowRunner" in args and f"--sdk_container_image={IMAGE}" in args
    assert "--temp_location=gs://bucket/tmp" in args and "--max_num_workers=50" in args
    options = PipelineOptions(args).get_all_options()
    assert options["project"] == "proj" and options["region"] == "us-central1"
    with pytest.raises(ValueError):
        dataflow_args("proj", "us-central1", "/local/dir", IMAGE)


def test_gpu_workers():
    args = dataflow_args("proj", "us-central1", "gs://bucket", IMAGE, gpu="nvidia-tesla-t4")
    options = PipelineOptions(args).get_all_options()
    assert options["dataflow_service_options"] == [
        "worker_accelerator=type:nvidia-tesla-t4;count:1;install-nvidia-driver"
    ]
    assert not any("worker_accelerator" in arg for arg in dataflow_args("p", "r", "gs://b", IMAGE))
    assert with_cuda_device(["--output", "gs://b/o"]) == ["--output", "gs://b/o", "--vqgan-device", "cuda"]
    for given in (["--vqgan-device", "cuda:0"], ["--vqgan-device=cpu"]):
        assert with_cuda_device(given) == given


def test_runner_alias():
    assert beam_options(["--runner=DaskRunner"]) == [
        "--runner=apache_beam.runners.dask.dask_runner.DaskRunner"
    ]
    assert beam_options(["--runner", "DaskRunner"])[1].endswith("dask_runner.DaskRunner")
    assert beam_options(["--runner=DirectRunner"]) == ["--runner=DirectRunner"]


def job_graph(options: PipelineOptions) -> beam.Pipeline:
    job = JobOptions(
        inputs=("gs://bucket/cc/*.warc.gz",),
        output="gs://bucket/shards",
        vqgan_device="cuda",  # a GPU job: the graph is built on a launcher without a GPU
        files=tuple(sample_inputs()),
    )
    assert job.image_batch_size == 32
    image_codes = {"n_embed": 1024, "codes_per_image": 256, "vqgan": {"checkpoint": "bundled", "sha256": "0"}}
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, job, image_codes, "test")
    return pipeline


def test_dataflow_job_graph_builds_offline():
    args = dataflow_args("proj", "us-central1", "gs://bucket", IMAGE, dry_run=True, gpu="nvidia-l4")
    options = PipelineOptions(args)
    pipeline = job_graph(options)
    if importlib.util.find_spec("google.auth") is not None:
        result = pipeline.run()  # --dry_run: the Dataflow job is built, not submitted
        assert result.job is not None
        return
    proto = pipeline.to_runner_api()
    names = {t.unique_name for t in proto.components.transforms.values()}
    for step in ("Read", "MinimizeClean", "GroupSpans", "VQGANEncode", "WriteShards", "Finalize"):
        assert any(name == step or name.endswith("/" + step) for name in names), step
    roundtrip = beam.Pipeline.from_runner_api(proto, pipeline.runner, options)
    assert len(roundtrip.to_runner_api().components.transforms) == len(proto.components.transforms)
