"""A job on one machine: refused in one line, with what to use instead, when its input would not fit the
memory the direct runner needs for it (unless --force), and `--runner dask` starting its own LocalCluster
whose workers spill shuffle partitions to disk and give the DirectRunner's bytes."""

import contextlib
import io
import re
from pathlib import Path

import pytest

from pipeline import one_machine
from pipeline.cli import main
from pipeline.make_sample_corpus import corpus_copy

MB = 1 << 20


def run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_info:
            code = exit_info.code
    return code, err.getvalue()


def corpus(directory: Path, copies: int) -> list[str]:
    """`copies` distinct copies of the sample corpus's WARC (other hosts, every sentence changed)."""
    directory.mkdir()
    args = []
    for copy in range(copies):
        path = directory / f"copy{copy}.warc.gz"
        path.write_bytes(corpus_copy(copy)[0])
        args += ["--input", str(path)]
    return args


def shard_files(output: Path) -> dict[str, bytes]:
    return {str(p.relative_to(output)): p.read_bytes() for p in sorted((output / "data").rglob("*.parquet"))}


# ---- the guard


def test_the_direct_runner_needs_more_memory_as_its_input_grows():
    for mode, footprint in one_machine.DIRECT_FOOTPRINTS.items():
        assert footprint.needs_mb(4 << 30) > footprint.needs_mb(1 << 30) > footprint.base_mb, mode
    available = 8 << 30
    assert one_machine.memory_problem("in_memory", 1 << 20, available) is None
    line = one_machine.memory_problem("multi_processing", 4 << 30, available)
    assert "\n" not in line and "4.00 GB of input" in line and "8.0 GB is available" in line
    assert "--runner dask --workers" in line and "--worker-memory" in line and "--force" in line


def test_a_run_too_large_for_the_available_memory_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(one_machine, "available_memory", lambda: 200 * MB)
    out = tmp_path / "out"
    code, err = run_cli(["run", "--output", str(out), "--no-images", "--quiet"])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "direct runner" in err and "--runner dask --workers" in err and "Dataflow" in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_force_runs_it_anyway(tmp_path, monkeypatch):
    monkeypatch.setattr(one_machine, "available_memory", lambda: 200 * MB)
    out = tmp_path / "out"
    code, err = run_cli(["run", "--output", str(out), "--no-images", "--quiet", "--force"])
    assert code == 0, err
    assert (out / "_meta" / "manifest.json").exists()


def test_a_run_that_fits_starts_without_a_word_about_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(one_machine, "available_memory", lambda: 64 << 30)
    code, err = run_cli(["run", "--output", str(tmp_path / "out"), "--no-images", "--quiet"])
    assert code == 0 and "memory" not in err, err


def test_dask_workers_whose_limits_exceed_the_memory_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(one_machine, "available_memory", lambda: 3 << 30)
    argv = ["run", "--output", str(tmp_path / "out"), "--runner", "dask", "--workers", "2"]
    code, err = run_cli([*argv, "--worker-memory", "2GB"])
    assert code == 2 and "2 workers x 1.9 GB exceed the 3.0 GB available" in err, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--worker-memory", "lots"], "expected a size such as 2GB"),
        (["--worker-memory", "10MB"], "at least 100MB"),
        (["--workers", "0"], "--workers"),
        (["--workers", "2"], "--workers and --worker-memory set up the cluster of --runner dask"),
    ],
)
def test_cluster_flags_are_checked_in_one_line(tmp_path, argv, message):
    code, err = run_cli(["run", "--output", str(tmp_path / "out"), *argv])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_sizes_are_read_as_dask_spells_them():
    assert one_machine.parse_size("2GB") == 2_000_000_000
    assert one_machine.parse_size("512MiB") == 512 << 20
    assert one_machine.parse_size("1.5g") == 1_500_000_000
    with pytest.raises(ValueError):
        one_machine.parse_size("2 parsecs")


# ---- --runner dask on this machine


@pytest.mark.slow
def test_dask_workers_spill_shuffles_to_disk_and_write_the_direct_runners_bytes(tmp_path, monkeypatch):
    """Workers limited to 100 MB keep at most 0.2% of it (200 KB) of task results, the shuffle partitions,
    in memory: the rest goes to disk. (A worker's own imports take more than 100 MB of RSS, so the
    thresholds on the process's RSS, meant for limits of GBs, are off here: they would pause every worker
    at once.)"""
    inputs = corpus(tmp_path / "corpus", 3)
    common = ["run", *inputs, "--no-images", "--quiet"]
    assert run_cli([*common, "--output", str(tmp_path / "direct")])[0] == 0
    monkeypatch.setattr(
        one_machine, "SPILL_FRACTIONS", {"target": 0.002, "spill": False, "pause": False, "terminate": False}
    )
    dask = ["--runner", "dask", "--workers", "2", "--worker-memory", "100MB"]
    code, err = run_cli([*common, "--output", str(tmp_path / "dask"), *dask])
    assert code == 0, err
    spilled = re.search(r"the Dask workers spilled ([\d.]+) MB of task results to disk", err)
    assert spilled and float(spilled.group(1)) > 0, err
    assert shard_files(tmp_path / "dask") == shard_files(tmp_path / "direct") != {}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cm3-dask-spill-")]


def test_dask_workers_weigh_beams_elements_by_what_they_hold():
    """Dask's own estimate of an object it does not know is `sys.getsizeof`: ten WindowedValues holding
    1 MB each weighed under a KB, so the runner's partitions never reached the spill target."""
    from apache_beam.transforms.window import GlobalWindow
    from apache_beam.utils.windowed_value import WindowedValue
    from dask.sizeof import sizeof

    partition = [WindowedValue(("url", b"x" * MB), 0, [GlobalWindow()]) for _ in range(10)]
    default = sizeof.dispatch(object)
    assert sizeof(partition) < 10_000
    try:
        one_machine.dask_setup()  # what each worker of the LocalCluster runs at start (a Dask preload)
        assert 10 * MB <= sizeof(partition) < 11 * MB
    finally:
        sizeof.register((object, WindowedValue))(default)
    assert sizeof(partition) < 10_000
