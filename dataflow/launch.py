"""Launch `cm3-data run` on Google Cloud Dataflow with flags only.

    python -m dataflow.launch --project P --region us-central1 --bucket gs://B \
        --image us-docker.pkg.dev/P/cm3/cm3-data-worker:0.1.0 -- \
        --input 'gs://B/cc/*.warc.gz' --output gs://B/shards/v1

Worker packaging is a custom SDK container (dataflow/Dockerfile): the project and its dependencies are
installed in the image, and taming-transformers with --no-deps (its PyPI metadata pulls torchvision and
pytorch-lightning, which we never import). Beam's --requirements_file / --extra_package cannot express
--no-deps, so the container is the supported route; build it with dataflow/build_image.sh.
"""

from __future__ import annotations

import argparse
import sys


def dataflow_args(
    project: str,
    region: str,
    bucket: str,
    image: str,
    job_name: str | None = None,
    max_workers: int | None = None,
    machine_type: str | None = None,
    dry_run: bool = False,
    gpu: str | None = None,
) -> list[str]:
    """The Beam pipeline options that send the job to Dataflow with our worker container; `gpu` (a Compute
    Engine accelerator type, e.g. nvidia-tesla-t4 or nvidia-l4) attaches one such GPU per worker, with the
    NVIDIA driver installed by Dataflow (https://cloud.google.com/dataflow/docs/gpu/use-gpus)."""
    bucket = bucket.rstrip("/")
    if not bucket.startswith("gs://"):
        raise ValueError(f"--bucket must be a gs:// path, got {bucket!r}")
    args = [
        "--runner=DataflowRunner",
        f"--project={project}",
        f"--region={region}",
        f"--temp_location={bucket}/tmp",
        f"--staging_location={bucket}/staging",
        f"--sdk_container_image={image}",
        "--sdk_location=container",
    ]
    if job_name:
        args.append(f"--job_name={job_name}")
    if max_workers:
        args.append(f"--max_num_workers={max_workers}")
    if machine_type:
        args.append(f"--worker_machine_type={machine_type}")
    if gpu:
        args.append(f"--dataflow_service_options=worker_accelerator=type:{gpu};count:1;install-nvidia-driver")
    if dry_run:
        args.append("--dry_run=True")
    return args


def with_cuda_device(run_args: list[str]) -> list[str]:
    """`cm3-data run` arguments with --vqgan-device cuda added unless one is given: on GPU workers the VQGAN
    should run there, in GPU-sized batches (which the launcher fixes only for an explicit cuda device)."""
    if any(arg == "--vqgan-device" or arg.startswith("--vqgan-device=") for arg in run_args):
        return list(run_args)
    return [*run_args, "--vqgan-device", "cuda"]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    run_args = []
    if "--" in argv:
        split = argv.index("--")
        argv, run_args = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m dataflow.launch",
        description="Run cm3-data on Dataflow. Arguments after -- go to `cm3-data run` (--input, --output ...).",
    )
    parser.add_argument("--project", required=True, help="GCP project id")
    parser.add_argument("--region", required=True, help="Dataflow region, e.g. us-central1")
    parser.add_argument("--bucket", required=True, help="gs:// path for temp and staging files")
    parser.add_argument("--image", required=True, help="worker container built from dataflow/Dockerfile")
    parser.add_argument("--job-name", default=None)
    parser.add_argument("--max-workers", type=int, default=None)
    parser.add_argument("--machine-type", default=None, help="e.g. n2-standard-8")
    parser.add_argument(
        "--gpu",
        metavar="TYPE",
        default=None,
        help="one GPU of this type per worker (nvidia-tesla-t4, nvidia-l4 with a g2 machine type ...); adds "
        "--vqgan-device cuda to the job unless given after --. Needs a worker image with CUDA torch",
    )
    parser.add_argument("--dry-run", action="store_true", help="build and translate the job, do not submit")
    args = parser.parse_args(argv)
    from pipeline.cli import main as cli_main

    extra = dataflow_args(
        args.project,
        args.region,
        args.bucket,
        args.image,
        args.job_name,
        args.max_workers,
        args.machine_type,
        args.dry_run,
        args.gpu,
    )
    if args.gpu:
        run_args = with_cuda_device(run_args)
    return cli_main(["run", *run_args, *extra])


if __name__ == "__main__":
    sys.exit(main())
