"""Everything that decides the output bytes is in JobOptions and in the manifest: the C4 rules and the
minimizer's budgets come from --options-file / --language-id, typos are one-line errors, and shard sizing
options are checked when parsed."""

import contextlib
import io
import json

import pytest

from c4_filters import C4Options
from html_minimizer import Limits
from pipeline.cli import main, rule_options, run_parser
from pipeline.graph import JobOptions


def test_options_file_and_language_id_build_the_rules(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("c4:\n  min_sentences: 5\nlimits:\n  max_tags: 5000\n")
    c4, limits = rule_options(str(path), "cascade")
    assert c4 == C4Options(min_sentences=5, language_id="cascade") and limits == Limits(max_tags=5000)
    assert rule_options(None, None) == (C4Options(), Limits())


@pytest.mark.parametrize(
    "text, message",
    [
        ("c4:\n  min_sentence: 5\n", "did you mean 'min_sentences'"),
        ("limits:\n  max_tag: 5\n", "did you mean 'max_tags'"),
        ("c4:\n  min_sentences: -1\n", "min_sentences"),
        ("rules: {}\n", 'expected a mapping with "c4" and/or "limits"'),
        ("c4: [1, 2\n", "cannot read --options-file"),
        ("c4: [1, 2]\n", "c4 must be a mapping of options, not [1, 2]"),
        ("limits: text\n", "limits must be a mapping of options, not 'text'"),
    ],
)
def test_a_wrong_options_file_is_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    assert main(["run", "--output", str(tmp_path / "out"), "--options-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv", [("--target-shard-mb", "0"), ("--train-shards", "0"), ("--validation-shards", "x")]
)
def test_shard_options_are_checked_when_parsed(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_parser().parse_known_args(["--output", "out", *argv])
    assert exit_info.value.code == 2 and argv[0] in capsys.readouterr().err


def test_job_options_refuse_impossible_values():
    for bad in ({"target_shard_mb": 0}, {"train_shards": 0}, {"limit": 0}, {"validation_fraction": 1.5}):
        with pytest.raises(ValueError):
            JobOptions(inputs=("x",), output="out", **bad)


@pytest.mark.slow
def test_the_manifest_records_the_rules_used(tmp_path, capsys):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"c4": {"min_sentences": 4}, "limits": {"max_attributes": 500}}))
    out = tmp_path / "out"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", "--output", str(out), "--no-images", "--quiet", "--options-file", str(path)])
    assert code == 0
    assert "no --input given: processing the bundled sample corpus" in capsys.readouterr().err
    options = json.loads((out / "_meta" / "manifest.json").read_text())["options"]
    assert C4Options.from_dict(options["c4"]) == C4Options(min_sentences=4)
    assert Limits.from_dict(options["limits"]) == Limits(max_attributes=500)
    assert options["target_shard_mb"] == 256 and options["train_shards"] is None
    manifest = json.loads((out / "_meta" / "manifest.json").read_text())
    assert len(manifest["splits"]["train"]["shards"]) == 1  # the sample corpus is far below 256 MB


def test_a_misspelled_flag_stops_the_job_with_the_closest_name(tmp_path, capsys):
    assert main(["run", "--output", str(tmp_path / "out"), "--no-imgaes"]) == 2
    err = capsys.readouterr().err
    assert err == "cm3-data run: unknown option --no-imgaes (did you mean --no-images?)\n"
    assert not (tmp_path / "out").exists()


def test_beam_flags_of_every_runner_pass():
    from dataflow import dataflow_args
    from pipeline.cli import unknown_flags

    parser = run_parser()
    flags = ["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    flags += ["--runner=DaskRunner", "--dask_client_address=tcp://127.0.0.1:8786"]
    flags += [
        "--flink_master=localhost:8081",
        "--spark_master_url=spark://x:7077",
        "--job_endpoint=localhost:8099",
    ]
    flags += dataflow_args("proj", "us-central1", "gs://bucket", "img:1", gpu="nvidia-l4", dry_run=True)
    assert unknown_flags(flags, parser) == []
    assert unknown_flags(["--dask_client_adress=x", "--runner=DaskRunner"], parser) == [
        "unknown option --dask_client_adress (did you mean --dask_client_address?)"
    ]


@pytest.mark.parametrize(
    "argv",
    [("--limit", "-3"), ("--limit", "0"), ("--validation-fraction", "1.5"), ("--validation-fraction", "x")],
)
def test_numeric_options_are_checked_when_parsed(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_parser().parse_known_args(["--output", "out", *argv])
    assert exit_info.value.code == 2 and argv[0] in capsys.readouterr().err


def test_an_output_that_cannot_be_created_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["run", "--output", str(blocker / "out"), "--no-images"]) == 2
    err = capsys.readouterr().err
    assert "cannot create --output" in err and err.count("\n") == 1


def test_an_unexpected_failure_is_one_line_unless_debug(monkeypatch, capsys):
    import pipeline.cli as cli

    def broken(argv):
        raise RuntimeError("something nobody expected\nacross lines")

    monkeypatch.setitem(cli.COMMANDS, "verify", broken)
    assert main(["verify", "out"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: something nobody expected across lines" in err
    assert "--debug" in err
    with pytest.raises(RuntimeError):
        main(["verify", "out", "--debug"])


def _alias_bomb() -> str:
    """367 bytes of YAML whose `c4.language` names 9**9 strings (a "billion laughs")."""
    lines = ["c4:", "  language:", '  - &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"  - &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_one_line_in_bounded_memory_and_time(tmp_path):
    import resource
    import subprocess
    import sys

    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb())

    def one_gigabyte():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    argv = ["-m", "pipeline.cli", "run", "--output", str(tmp_path / "out"), "--options-file", str(path)]
    done = subprocess.run(
        [sys.executable, *argv], preexec_fn=one_gigabyte, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr[-2000:]
    assert "anchors and aliases" in done.stderr and "line 3" in done.stderr


def test_a_duplicate_key_in_the_options_file_is_refused(tmp_path, capsys):
    path = tmp_path / "rules.yaml"
    path.write_text("c4:\n  min_sentences: 5\nc4:\n  min_sentences: 1\n")
    assert main(["run", "--output", str(tmp_path / "out"), "--options-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and "key 'c4' is given twice" in err and err.count("\n") == 1


def test_a_huge_value_is_quoted_short(tmp_path, capsys):
    path = tmp_path / "rules.yaml"
    path.write_text("c4:\n  language: {" + ", ".join(f"k{i}: {i}" for i in range(50_000)) + "}\n")
    assert main(["run", "--output", str(tmp_path / "out"), "--options-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 1000 and "C4Options.language" in err
