"""The image-fetching flags: parsed and checked, handed to the fetcher, and kept out of the manifest (they
decide how the job runs, not what it writes)."""

import pytest

from pipeline.cli import fetch_job_options, run_parser
from pipeline.graph import JobOptions, fetch_options


def parse(*argv: str):
    args, _ = run_parser().parse_known_args(["--output", "out", *argv])
    return args


def test_flags_reach_the_fetcher():
    args = parse(
        "--fetch-concurrency", "8", "--fetch-timeout", "4", "--user-agent", "mybot/1",
        "--fetch-proxy", "http://proxy.internal:3128", "--max-image-failure-rate", "0.2",
    )  # fmt: skip
    job = JobOptions(inputs=("x",), output="out", allow_private_image_hosts=True, **fetch_job_options(args))
    assert (job.fetch_concurrency, job.max_image_failure_rate) == (8, 0.2)
    options = fetch_options(job)
    assert (options.total_timeout, options.connect_timeout, options.read_timeout) == (4, 4, 4)
    assert options.user_agent == "mybot/1" and options.proxy == "http://proxy.internal:3128"
    assert options.allow_private_hosts


def test_defaults_come_from_the_dataclasses():
    job = JobOptions(inputs=("x",), output="out", **fetch_job_options(parse()))
    assert (job.fetch_concurrency, job.fetch_timeout, job.max_image_failure_rate, job.fetch_proxy) == (
        64,
        30.0,
        0.5,
        None,
    )
    assert fetch_options(job).user_agent.startswith("cm3-data/")


def test_proxy_from_the_environment_only_when_asked(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:8080")
    assert "fetch_proxy" not in fetch_job_options(parse())
    assert fetch_job_options(parse("--fetch-proxy", "env"))["fetch_proxy"] == "http://env-proxy:8080"
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.delenv("https_proxy", raising=False)
    with pytest.raises(ValueError, match="HTTPS_PROXY"):
        fetch_job_options(parse("--fetch-proxy", "env"))


@pytest.mark.parametrize(
    "argv",
    [
        ("--fetch-concurrency", "0"),
        ("--fetch-timeout", "0"),
        ("--fetch-timeout", "x"),
        ("--max-image-failure-rate", "1.5"),
    ],
)
def test_bad_values_are_refused_when_parsed(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2 and argv[0] in capsys.readouterr().err


def test_run_only_options_are_not_in_the_manifest():
    options = JobOptions(inputs=("x",), output="out", fetch_concurrency=3, user_agent="b").manifest_options()
    for name in ("fetch_concurrency", "fetch_timeout", "user_agent", "fetch_proxy", "max_image_failure_rate"):
        assert name not in options
    assert {"files", "input_bytes", "html_urls", "output"}.isdisjoint(options)
    assert options["fetch_images"] is True and options["inputs"] == ["x"]


@pytest.mark.parametrize(
    "bad", [{"fetch_concurrency": 0}, {"fetch_timeout": 0}, {"max_image_failure_rate": 2}]
)
def test_job_options_refuse_impossible_fetch_values(bad):
    with pytest.raises(ValueError):
        JobOptions(inputs=("x",), output="out", **bad)
