"""`cm3-generate` end to end (`model.generate_cli`): results, pages and PNGs, one-line errors, help
and `eval`."""

from __future__ import annotations

import json
import re

import lxml.html
import numpy as np
import pytest
import torch

from model import CM3Config, CM3Transformer, load_checkpoint
from model.checkpoint import write_manifest, write_model_files
from model.generate import (
    MODES,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
def test_cli_writes_results_pages_and_pngs(checkpoint, vq, tmp_path, request_for, src_values):
    from PIL import Image
    from skimage import data as skdata

    from image_tokenizer import preprocess
    from model.generate_cli import main

    Image.fromarray(skdata.astronaut()).save(tmp_path / "astronaut.png")
    n_embed = vq.n_embed
    requests = [request_for(mode, n_embed) for mode in MODES]
    requests.append({"mode": "causal_caption", "image": "astronaut.png"})
    lines = [json.dumps(r) for r in requests] + ["not json", json.dumps({"mode": "conditional_image"})]
    (tmp_path / "prompts.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    args = [
        str(checkpoint),
        "--prompts",
        str(tmp_path / "prompts.jsonl"),
        "--out",
        str(out),
        "--num-beams",
        "2",
    ]
    rc = main([*args, "--num-samples", "2", "--max-new-tokens", "12"])
    assert rc == 1  # two bad lines, reported, the rest still done
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == len(lines)
    assert [("error" in r) for r in records] == [False] * len(requests) + [True, True]
    image_record = records[0]
    assert len(image_record["outputs"]) == 2
    pngs = [f for f in image_record["files"] if f.endswith(".png")]
    assert len(pngs) == 2
    for name in pngs:
        with Image.open(out / name) as png:
            assert png.size == (256, 256)
            assert np.asarray(png).std() > 0
    page = (out / image_record["files"][0]).read_text()
    assert 'src="0000-unconditional_image-0-img0.png"' in page
    index = lxml.html.fromstring((out / "index.html").read_bytes())
    links = {a.get("href") for a in index.iter("a")}
    assert {f for r in records for f in r.get("files", []) if f.endswith(".html")} == links
    assert not list(index.iter("script"))
    caption = next(r for r in records if r.get("mode") == "masked_caption")
    caption_pngs = {f for f in caption["files"] if f.endswith(".png")}
    assert len(caption_pngs) == 1  # every candidate shows the one captioned image
    astronaut = records[len(MODES)]
    assert astronaut["outputs"] and all((out / f).is_file() for f in astronaut["files"])
    assert src_values(astronaut["outputs"][0]["document"])[0] == " ".join(
        map(
            str,
            vq.encode(preprocess(Image.open(tmp_path / "astronaut.png"), seed_key="astronaut.png")[None])[0],
        )
    )
    inline = tmp_path / "inline"
    entity = json.dumps(request_for("entity", n_embed))
    assert main([str(checkpoint), "--prompt", entity, "--prompt", entity, "--out", str(inline)]) == 0
    inline_records = [json.loads(line) for line in (inline / "results.jsonl").read_text().splitlines()]
    assert [r["best"] for r in inline_records] == [records[MODES.index("entity")]["best"]] * 2
    assert (inline / "0001-entity-0.html").is_file()


def test_image_modes_of_a_model_trained_without_images_warn(checkpoint, tmp_path, capsys):
    """A checkpoint whose training data held no image tokens (`cm3-data run --no-images`) still runs
    image modes, with one warning line naming them; text modes, and models that saw images, get none."""
    import shutil

    from model.generate_cli import main

    blind = tmp_path / "blind"
    shutil.copytree(checkpoint, blind)
    config = json.loads((blind / "config.json").read_text())
    (blind / "config.json").write_text(json.dumps({**config, "data": {"image_tokens": 0}}))
    write_manifest(blind, step=0)  # as such a run writes it
    image = json.dumps({"mode": "unconditional_image"})
    text = json.dumps({"mode": "score", "prompt": "<p>Paris is the capital of", "candidates": [" France."]})
    flags = ["--num-samples", "1"]
    assert main([str(blind), "--prompt", image, "--prompt", text, "--out", str(tmp_path / "a"), *flags]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [
        f"cm3-generate: warning: {blind} was trained on shards without images (cm3-data run --no-images: "
        "no image tokens), so unconditional_image will give noise"
    ]
    assert main([str(blind), "--prompt", text, "--out", str(tmp_path / "b")]) == 0
    assert main([str(checkpoint), "--prompt", image, "--out", str(tmp_path / "c"), *flags]) == 0
    assert "warning" not in capsys.readouterr().err


def test_cli_refuses_a_run_that_cannot_start_in_one_line(checkpoint, tmp_path, capsys, request_for):
    """A prompts file that is not UTF-8, a missing or damaged checkpoint, a GPU that is not there:
    exit 2 and one line, no traceback."""
    import shutil

    from model.generate_cli import main

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_bytes(b'{"mode": "score", "prompt": "caf\xe9"}\n')
    damaged = tmp_path / "damaged"
    shutil.copytree(checkpoint, damaged)
    (damaged / "model.pt").write_bytes(b"")
    entity = json.dumps(request_for("entity", 16))
    cases = [
        ([str(checkpoint), "--prompts", str(prompts)], "not UTF-8"),
        ([str(tmp_path / "nowhere"), "--prompt", entity], "no checkpoint under"),
        ([str(damaged), "--prompt", entity], "model.pt"),
    ]
    if not torch.cuda.is_available():
        cases.append(([str(checkpoint), "--prompt", entity, "--device", "cuda"], "no GPU"))
    for args, said in cases:
        capsys.readouterr()
        assert main([*args, "--out", str(tmp_path / "out")]) == 2, said
        err = capsys.readouterr().err
        assert err.startswith("cm3-generate: ") and said in err and err.count("\n") == 1, err


def test_cli_a_misspelt_flag_is_one_line_naming_the_flag(capsys):
    from model.generate_cli import main

    for argv in (["ckpt", "--prompt", "{}", "--ouput", "o"], ["eval", "ckpt", "tasks.jsonl", "--ouput", "o"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1, err
        assert "unknown option --ouput (did you mean --output?)" in err


def test_cli_refuses_a_non_empty_out_unless_overwrite_replaces_it(
    checkpoint, tmp_path, capsys, monkeypatch, request_for
):
    from model.generate_cli import main

    entity = json.dumps(request_for("entity", 16))
    out = tmp_path / "out"
    run = [str(checkpoint), "--prompt", entity, "--out", str(out)]
    assert main(run) == 0
    (out / "stale.html").write_text("from an earlier run")
    capsys.readouterr()
    assert main(run) == 2
    err = capsys.readouterr().err
    assert "is not empty; pass --overwrite" in err and err.count("\n") == 1
    assert (out / "stale.html").is_file()
    assert main([*run, "--overwrite"]) == 0
    assert not (out / "stale.html").exists() and (out / "results.jsonl").is_file()
    capsys.readouterr()
    assert main([str(checkpoint), "--prompt", entity, "--out", str(checkpoint.parent), "--overwrite"]) == 2
    assert "would replace the checkpoint" in capsys.readouterr().err and (checkpoint / "model.pt").is_file()
    monkeypatch.chdir(out)
    assert main([str(checkpoint), "--prompt", entity, "--out", ".", "--overwrite"]) == 2
    assert (
        "would replace the working directory" in capsys.readouterr().err and (out / "results.jsonl").is_file()
    )


def test_cli_one_line_for_a_missing_prompts_file_or_clip(checkpoint, tmp_path, capsys, request_for):
    from model.generate_cli import main

    entity = json.dumps(request_for("entity", 16))
    cases = [
        (["--prompts", str(tmp_path / "nope.jsonl")], "cannot read"),
        (["--prompt", entity, "--rerank", "clip"], "needs --clip"),
        (["--prompt", entity, "--rerank", "clip", "--clip", str(tmp_path)], "no CLIP model there"),
        (["--prompt", entity, "--device", "gpu0"], "torch device: cpu, cuda"),
        (
            ["--prompt", entity, "--vqgan", str(tmp_path / "nope.ckpt")],
            "--vqgan " + str(tmp_path / "nope.ckpt"),
        ),
    ]
    for args, said in cases:
        capsys.readouterr()
        assert main([str(checkpoint), *args, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("cm3-generate: ") and said in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_cli_unexpected_failure_is_one_line_and_debug_shows_it(checkpoint, tmp_path, capsys, request_for):
    """A checkpoint whose weights were written for another shape: not an ordinary mistake the CLI
    knows, so the general guard answers with one line (exit 1) and --debug raises."""
    model, tok, _ = load_checkpoint(checkpoint)
    other = CM3Transformer(CM3Config(**{**model.config.__dict__, "d_ffn": 96}))
    write_model_files(tmp_path / "odd", other.state_dict(), model.config, tok)
    from model.generate_cli import main

    args = [
        str(tmp_path / "odd"),
        "--prompt",
        json.dumps(request_for("entity", 16)),
        "--out",
        str(tmp_path / "o"),
    ]
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("cm3-generate: RuntimeError: ") and err.count("\n") == 1
    assert err.rstrip().endswith("(rerun with --debug for the traceback)")
    with pytest.raises(RuntimeError):
        main([*args, "--debug"])


def test_cli_help_lists_every_mode_with_fields_and_an_example(capsys):
    from model.generate_cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for mode in MODES:
        line = re.search(rf"^  {mode} +(\S.*)$", text, flags=re.M)
        assert line, mode
        assert f'e.g. {{"mode": "{mode}"' in text
    assert "--device" in text and "cpu, cuda" in text
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = capsys.readouterr().out
    assert all(task in text for task in ("summarization", "disambiguation", "linking", "captioning"))


@pytest.mark.slow
def test_cli_eval_prints_the_paper_metric_per_task(
    checkpoint, tmp_path, capsys, caption_codes, captions, sentences
):
    from model.evaluate import rouge, rouge_scorer
    from model.generate_cli import main

    html = '<p><a title="<mask:0>">Paris</a> is the capital of France.</p>'
    codes = caption_codes(captions[0], 1024)
    tasks = [
        {
            "task": "summarization",
            "document": sentences[0],
            "summary": "A cat.",
            "size_hint": 6,
            "max_len": 80,
        },
        {
            "task": "summarization",
            "document": sentences[3],
            "summary": "Coffee.",
            "size_hint": 6,
            "max_len": 80,
        },
        {"task": "disambiguation", "html": html, "candidates": ["Paris", "Spain"], "answer": "Paris"},
        {"task": "linking", "html": html, "candidates": ["Paris", "Spain"], "answer": "Paris"},
        {
            "task": "linking",
            "html": html.replace("France", '<a title="<mask:1>">France</a>'),
            "candidates": [["Paris", "Spain"], ["France", "Spain"]],
            "answer": ["Paris", "France"],
        },
        {"task": "captioning", "codes": codes, "caption": captions[0]},
        {"task": "translation"},
    ]
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(json.dumps(t) for t in tasks) + "\n")
    out = tmp_path / "eval"
    assert main(["eval", str(checkpoint), str(path), "--out", str(out), "--max-new-tokens", "8"]) == 1
    table = capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [("error" in r) for r in rows] == [False] * 6 + [True]
    assert rows[4]["mentions"] == 2 and rows[4]["metrics"]["accuracy"] in (0.0, 50.0, 100.0)
    scorer = rouge_scorer()
    for row, task in zip(rows[:2], tasks[:2], strict=True):
        assert row["metrics"] == rouge(scorer, row["result"]["summary"], task["summary"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["summarization"]["n"] == 2
    assert summary["summarization"]["rougeL"] == pytest.approx(
        (rows[0]["metrics"]["rougeL"] + rows[1]["metrics"]["rougeL"]) / 2
    )
    assert summary["disambiguation"]["accuracy"] in (0.0, 100.0)
    assert (
        summary["captioning"]["caption_perplexity"] > 1 and summary["captioning"]["reference_perplexity"] > 1
    )
    for task in ("summarization", "disambiguation", "linking", "captioning", "translation"):
        assert re.search(rf"^{re.escape(task)} ", table, flags=re.M), table


@pytest.mark.slow
def test_cli_rerank_clip_uses_the_local_clip(checkpoint, tiny_clip, tmp_path, caption_codes, captions):
    from model.generate_cli import main

    request = {"mode": "caption", "codes": caption_codes(captions[0], 1024), "samples": 2, "top": 2}
    out = tmp_path / "clip"
    args = [str(checkpoint), "--prompt", json.dumps(request), "--out", str(out), "--max-new-tokens", "8"]
    assert main([*args, "--rerank", "clip", "--clip", str(tiny_clip)]) == 0
    (record,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [o["reranker"] for o in record["outputs"]] == ["clip", "clip"]
    assert record["outputs"][0]["rerank_score"] >= record["outputs"][1]["rerank_score"]
