"""`cm3-data` as a data engineer meets it: one line for every mistake, no run that succeeds having read
nothing, an output replaced only once the new one is complete (Ctrl-C keeps the old one), and only our own
lines on stderr unless --verbose."""

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline import shards
from pipeline.cli import (
    beam_lines_dropped,
    build_job,
    fetch_job_options,
    job_flag_options,
    main,
    run_parser,
    runs_on_this_machine,
)
from pipeline.graph import JobOptions
from pipeline.hygiene import Hygiene
from pipeline.readers import expand_inputs
from pipeline.report import build_report, report_table
from pipeline.view import parse_args as view_args

REPO = Path(__file__).resolve().parents[2]
# a log line of Beam's, its workers' or grpc's, in any of the formats they print
BEAM_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR)[: ](root|__main__|apache_beam|grpc)|apitools|Discarding")


def run_cli(argv: list[str]) -> tuple[int, str]:
    """main's exit code (or argparse's) and stderr, for mistakes caught before any job starts."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_info:
            code = exit_info.code
    return code, err.getvalue()


def cli_process(*argv: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def siblings(path: Path) -> list[str]:
    """What a run left beside its output (a .NAME.partial-* or .NAME.replaced-* directory)."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


# ---- arguments


def test_an_unquoted_glob_is_refused_in_one_line(tmp_path):
    pages = [tmp_path / f"{name}.html" for name in "abc"]
    for page in pages:
        page.write_text("<p>x</p>")
    out = tmp_path / "out"
    code, err = run_cli(["run", "--input", *map(str, pages), "--output", str(out), "--no-images"])
    assert code == 2 and err.count("\n") == 1, err
    assert f"unexpected arguments {pages[1]} {pages[2]}" in err and "quote a glob" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, said",
    [
        (["run", "--ouput", "o"], "unknown option --ouput (did you mean --output?)"),
        (["optout", "x", "--urls", "u", "--ouput", "o"], "unknown option --ouput (did you mean --output?)"),
        (["view", "x", "--ouput", "o"], "unknown option --ouput (did you mean --output?)"),
        (["verify", "x", "--quik"], "unknown option --quik (did you mean --quick?)"),
        (["run", "--output", "o", "--language-id", "foo", "--direct_num_workers=2"], "invalid choice: 'foo'"),
        (["view", "x", "--output", "o", "--split", "test"], "invalid choice: 'test'"),
    ],
)
def test_a_misspelt_flag_or_an_invalid_choice_is_one_line(argv, said):
    code, err = run_cli(argv)
    assert code == 2 and said in err and err.count("\n") == 1 and "usage" not in err, err


def test_out_is_an_alias_of_output(tmp_path):
    assert run_parser().parse_known_args(["--out", "o"])[0].output == "o"
    assert view_args(["shards", "--out", "page.html"]).out == "page.html"
    code, err = run_cli(["optout", str(tmp_path), "--urls", "u", "--out", str(tmp_path)])
    assert code == 2 and "--output must differ" in err


# each flag whose default a dataclass field holds: the flag's help quotes that default
FLAG_DEFAULTS = {
    "target_shard_mb": JobOptions,
    "validation_fraction": JobOptions,
    "vqgan_device": JobOptions,
    "fetch_concurrency": JobOptions,
    "fetch_timeout": JobOptions,
    "max_image_failure_rate": JobOptions,
    "max_image_url_repeats": Hygiene,
    "min_image_side": Hygiene,
    "max_image_aspect_ratio": Hygiene,
    "max_images_per_doc": Hygiene,
}


def test_flags_not_given_keep_the_dataclass_defaults_which_the_help_quotes():
    args, _ = run_parser().parse_known_args(["--output", "out"])
    job = JobOptions(inputs=("x",), output="out", **job_flag_options(args), **fetch_job_options(args))
    plain = JobOptions(inputs=("x",), output="out")
    assert {**vars(job), "started": 0} == {**vars(plain), "started": 0}  # run-only fields too
    helps = {action.dest: action.help for action in run_parser()._actions}
    for dest, config in FLAG_DEFAULTS.items():
        default = config.__dataclass_fields__[dest].default
        shown = re.escape(f"{default:g}" if isinstance(default, float) else str(default))
        assert re.search(rf"default:? {shown}\b|\b{shown}, the default|\b{shown} \(default\)", helps[dest]), (
            dest
        )


def test_flags_given_reach_the_job():
    args, _ = run_parser().parse_known_args(
        [
            "--output",
            "o",
            "--min-image-side",
            "20",
            "--no-doc-dedup",
            "--no-fetch",
            "--validation-fraction",
            "0",
        ]
    )
    options = job_flag_options(args)
    assert options["hygiene"] == Hygiene(min_image_side=20, doc_dedup=False)
    assert options["fetch_images"] is False and options["validation_fraction"] == 0


def test_a_built_job_has_its_partial_output_and_nothing_else_yet(tmp_path):
    """build_job checks and describes the job; running it (run_job) is a separate step."""
    args, beam_args = run_parser().parse_known_args(["--output", str(tmp_path / "out"), "--no-images"])
    launch = build_job(args, beam_args)
    try:
        assert launch.sample_corpus and launch.n_files == len(expand_inputs(launch.patterns)) > 0
        assert launch.output == str(tmp_path / "out") and not (tmp_path / "out").exists()
        assert os.path.isdir(launch.job.output) and launch.job.images is False
    finally:
        shards.discard_output(launch.job.output)
    assert os.listdir(tmp_path) == []


def test_a_directory_input_is_the_input_files_under_it(tmp_path):
    for name in ("a.html", "b.warc.gz", "notes.txt", "sub/c.htm"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [Path(path).relative_to(tmp_path).as_posix() for path, _ in expand_inputs([str(tmp_path)])]
    assert found == ["a.html", "b.warc.gz", "sub/c.htm"]
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("")
    with pytest.raises(FileNotFoundError, match="no input file .* under the directory"):
        expand_inputs([str(notes)])
    with pytest.raises(ValueError, match="no input file is named as an input kind"):
        expand_inputs([str(tmp_path / "*.txt")])
    code, err = run_cli(["run", "--input", str(notes), "--output", str(tmp_path / "out"), "--no-images"])
    assert code == 2 and "under the directory" in err and err.count("\n") == 1


def test_a_cuda_vqgan_without_a_gpu_is_refused_before_the_job(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, err = run_cli(["run", "--output", str(tmp_path / "out"), "--vqgan-device", "cuda"])
    assert code == 2 and err.count("\n") == 1 and "sees no GPU" in err and "--vqgan-device cpu" in err
    assert not (tmp_path / "out").exists() and not siblings(tmp_path / "out")


def test_only_runners_whose_workers_run_here_have_the_device_checked():
    from apache_beam.options.pipeline_options import PipelineOptions

    def here(*flags: str) -> bool:
        return runs_on_this_machine(PipelineOptions(list(flags)))

    assert here() and here("--direct_running_mode=multi_processing") and here("--runner=DirectRunner")
    assert here("--runner=apache_beam.runners.dask.dask_runner.DaskRunner")
    assert not here("--runner=apache_beam.runners.dask.dask_runner.DaskRunner", "--dask_client_address=x:1")
    assert not here("--runner=DataflowRunner")


# ---- runs that read nothing, and the read losses in the summary


def test_a_run_that_reads_nothing_fails_naming_the_input_and_keeps_the_old_output(tmp_path):
    page = tmp_path / "page.warc"  # an HTML file under a WARC name
    page.write_text("<html><body><p>Hello there.</p></body></html>")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("the previous output")
    code, err = run_cli(["run", "--input", str(page), "--output", str(out), "--overwrite", "--no-images"])
    assert code == 1
    assert err.splitlines()[-1] == (
        f"cm3-data run: no page read from {page} (1 file): read.broken_or_truncated_record 1; "
        f"--output {out} is as it was"
    )
    assert [p.name for p in out.iterdir()] == ["old.txt"] and not siblings(out)


def test_the_console_summary_shows_why_records_were_not_read():
    counts = {"read.files.warc": 2, "read.pages.warc": 5, "read.warc_response": 7, "read.bad_record": 2}
    table = report_table(build_report({**counts, "read.pages_over_limit": 3}, {}))
    assert "not read" in table and re.search(r"read\.bad_record +2", table)
    assert re.search(r"read\.pages_over_limit +3", table) and "read.warc_response" not in table


@pytest.mark.slow
def test_the_limit_is_job_wide_on_the_direct_runner_and_on_dask(tmp_path):
    """Three files of two pages each, --limit 3: three pages read on every runner (Dask repeats elements
    of a group read as a side input, which once made the cut-off the first page)."""
    import json

    from dataflow import local_dask_cluster
    from pipeline.warc_writer import http_response, warc_record

    for name in "abc":
        records = [
            warc_record(f"https://n.example/{name}{k}", http_response(b"<p>x</p>", "text/html"))
            for k in (0, 1)
        ]
        (tmp_path / f"{name}.warc.gz").write_bytes(b"".join(records))
    args = ["run", "--input", str(tmp_path / "*.warc.gz"), "--no-images", "--limit", "3", "--quiet"]
    with local_dask_cluster(2) as address:
        dask = ["--runner=DaskRunner", f"--dask_client_address={address}"]
        for output, extra in ((tmp_path / "direct", []), (tmp_path / "dask", dask)):
            assert run_cli([*args, "--output", str(output), *extra])[0] == 0
            counts = json.loads((output / "_meta" / "report.json").read_text())["counts"]
            assert (counts["read.pages.warc"], counts["read.pages_over_limit"]) == (3, 3), output


# ---- replacing an output


def test_the_new_output_is_built_beside_and_swapped_in_whole(tmp_path):
    out = tmp_path / "out"
    partial = Path(shards.partial_output(str(out)))
    assert partial.parent == tmp_path and partial.name.startswith(".out.partial-")
    (partial / "_meta").mkdir(parents=True)
    (partial / "_meta" / "manifest.json").write_text("new")
    out.mkdir()
    (out / "stale.parquet").write_text("old")
    shards.swap_output(str(partial), str(out))
    assert sorted(p.name for p in out.rglob("*")) == ["_meta", "manifest.json"] and not siblings(out)


def test_objects_are_moved_one_by_one_where_directories_cannot_be_renamed(tmp_path):
    source, target = tmp_path / "new", tmp_path / "out"
    (source / "_meta").mkdir(parents=True)
    (source / "train-00000-of-00001.parquet").write_text("rows")
    (source / "_meta" / "report.json").write_text("{}")
    shards.move_objects(str(source), str(target))
    assert (target / "_meta" / "report.json").read_text() == "{}"
    assert (target / "train-00000-of-00001.parquet").read_text() == "rows"
    assert not list(source.rglob("*.*"))


@pytest.mark.parametrize(
    "workers",
    [[], ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]],
    ids=["one", "multi"],
)
def test_ctrl_c_during_overwrite_is_one_line_exit_130_and_keeps_the_old_output(tmp_path, workers):
    """SIGINT to the process group, as a terminal's Ctrl-C: the worker processes are interrupted too."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("the previous output")
    process = cli_process(
        "run", "--output", str(out), "--overwrite", "--no-images", "--quiet", *workers, start_new_session=True
    )
    assert "[cm3-data] no --input given" in process.stderr.readline()
    assert "input files ->" in process.stderr.readline()  # the job is starting
    time.sleep(2.0 if workers else 0.5)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err == f"cm3-data run: interrupted; --output {out} is as it was\n"
    assert [p.name for p in out.iterdir()] == ["old.txt"] and not siblings(out)


def test_worker_log_lines_and_tracebacks_are_dropped_ours_pass():
    lines = [
        b"[cm3-data] 2 input files -> out\n",
        b"INFO:__main__:Logging handler created.\n",
        b"WARNING:root:apitools not found, and bigquery client libraries are not available\n",
        b"Exception in thread run_worker:\n",
        b"Traceback (most recent call last):\n",
        b'  File "local_job_service.py", line 224, in run\n',
        b"RuntimeError: Worker subprocess exited with return code -2\n",
        b"\n",
        b"WARNING pipeline.readers: cannot read x.warc\n",
    ]
    kept = list(beam_lines_dropped(lines, threading.Event()))
    assert kept == [lines[0], lines[-1]]
    interrupted = threading.Event()
    interrupted.set()
    assert list(beam_lines_dropped(lines, interrupted)) == []


# ---- quiet by default


def test_only_our_own_lines_on_stderr_even_from_worker_processes(tmp_path):
    flags = [
        "--no-images",
        "--limit",
        "2",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    ]
    process = cli_process("run", "--output", str(tmp_path / "out"), *flags)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0 and "written: " in out, err
    assert not [line for line in err.splitlines() if BEAM_LINE.search(line)], err
    assert err.splitlines()[:2] == [
        "[cm3-data] no --input given: processing the bundled sample corpus",
        f"[cm3-data] 2 input files -> {tmp_path / 'out'}",
    ]


def test_other_commands_print_no_beam_warning_either(tmp_path):
    process = cli_process("verify", str(tmp_path))
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1 and "manifest.json is missing" in out
    assert err == "", err


def test_verbose_shows_beams_lines(tmp_path):
    process = cli_process(
        "run", "--output", str(tmp_path / "out"), "--no-images", "--limit", "1", "--verbose"
    )
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0 and re.search(r"^INFO apache_beam", err, re.M), err
