"""The paper's prompts (`model.prompts`): one builder per mode, the exact prompt texts, bad requests
as one `PromptError`."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from model.generate import (
    MODES,
    CodeState,
    GenerationSettings,
    PromptError,
    build_prompt,
    run_request,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.one_of(st.text(max_size=12), st.integers(0, 15).map(lambda i: f"<mask:{i}>")), max_size=8
    ).map("".join)
)
def test_encode_with_masks_round_trips(loaded, text):
    """Every `<mask:i>` of the prompt syntax becomes one sentinel id; any other text, a bare `<mask:` or a
    `<mask:x>` included, is BPE text. Masks made of two pieces (`<mask:` + `3>`) are masks too."""
    _, tok, _ = loaded
    from model.generate import encode_with_masks

    masks = [int(i) for i in re.findall(r"<mask:(\d+)>", text)]
    assume(all(i < tok.n_masks for i in masks))  # a larger index is refused (the test below)
    ids = encode_with_masks(tok, text)
    assert tok.decode(ids) == text
    assert sum(tok.is_mask_id(i) for i in ids) == len(masks)


def test_a_mask_index_past_the_tokenizers_masks_is_a_prompt_error(loaded):
    _, tok, _ = loaded
    from model.generate import encode_with_masks

    with pytest.raises(PromptError, match="exceeds the tokenizer's"):
        encode_with_masks(tok, f"<p><mask:{tok.n_masks}> x</p>")


def test_the_causal_caption_ends_where_its_title_attribute_or_markup_does(loaded, request_for):
    """A caption that runs on into markup is cut before it: at `"`, `<` or `>`, whichever comes first."""
    _, tok, constraint = loaded
    stop = build_prompt(tok, constraint, request_for("causal_caption", tok.n_embed)).stop
    for generated, caption in (
        (" the harbour.</figcaption></section>", " the harbour."),
        (' the harbour" alt="x">', " the harbour"),
        (" the harbour><p>", " the harbour"),
    ):
        ids = tok.encode(generated)
        finished = next(
            f
            for i in range(1, len(ids) + 1)
            if (f := stop.finished_text(tok, ids[:i], CodeState())) is not None
        )
        assert finished == caption


def test_conditional_image_infilling_is_the_papers_prompt(loaded, caption_codes, captions):
    """Section 4.2.1: `<img alt="Photo: {text}" src="{prefix}<mask:0>{postfix}"><mask:0>`; without text,
    section 4.1.2's `<img src="{prefix}<mask:0>{postfix}"><mask:0>`."""
    _, tok, constraint = loaded
    codes = caption_codes(captions[0], tok.n_embed)
    prefix, postfix = " ".join(map(str, codes[:64])), " ".join(map(str, codes[128:]))
    request = {"mode": "image_infill", "codes": codes, "span": [64, 128], "text": "a red square"}
    conditional = tok.decode(build_prompt(tok, constraint, request).ids)
    assert conditional == f'<img alt="Photo: a red square" src="{prefix}<mask:0>{postfix}"><mask:0>'
    del request["text"]
    assert tok.decode(build_prompt(tok, constraint, request).ids) == (
        f'<img src="{prefix}<mask:0>{postfix}"><mask:0>'
    )


def test_every_mode_is_one_builder_and_documented():
    """A mode is one entry of the builder table, and model/GENERATE.md's table describes each one."""
    from pathlib import Path

    from model.prompts import BUILDERS

    assert MODES == tuple(BUILDERS)
    doc = (Path(__file__).resolve().parents[2] / "model" / "GENERATE.md").read_text()
    documented = re.findall(r"^\| `(\w+)` \|", doc, flags=re.M)
    assert set(MODES) <= set(documented)


@pytest.mark.parametrize(
    "request_",
    [
        {"mode": "nope"},
        {"mode": ["a", "list"]},
        {"mode": "conditional_image"},
        {"mode": "text_infill", "html": "<p>no mask</p>"},
        {"mode": "text_infill", "html": "<p><mask:1> only</p>"},
        {"mode": "text_infill", "html": "<p><mask:0> and <mask:0></p>"},
        {"mode": "image_infill", "codes": [0] * 256, "span": [10, 5]},
        {"mode": "masked_caption", "codes": [0] * 10},
        {"mode": "masked_caption", "codes": [10**6] * 256},
        {"mode": "causal_caption"},
        {"mode": "score", "prompt": "x", "candidates": []},
        {"mode": "entity", "html": "<p>no mask</p>", "candidates": ["a"]},
        {"mode": "link", "html": '<a title="<mask:0>"><mask:0></a>', "candidates": ["a"]},
        {"mode": "link", "html": '<a title="<mask:0>">x</a>'},
        {"mode": "caption", "codes": [0] * 256, "samples": -1},
        {"mode": "caption", "codes": [0] * 256, "samples": 2, "top": 0},
        {"mode": "continue", "html": ""},
        {"mode": "summarize", "document": "text", "style": "abstract"},
        {"mode": "summarize", "document": "text", "size_hint": 0},
        {"mode": "summarize", "document": " \n "},
        {"mode": "conditional_image", "text": "x", "top": True},
    ],
)
def test_bad_requests_raise_prompt_error(loaded, request_):
    _, tok, constraint = loaded
    with pytest.raises(PromptError):
        build_prompt(tok, constraint, request_)


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2000),
    st.text(max_size=20),
    st.lists(st.one_of(st.integers(-5, 300), st.text(max_size=5)), max_size=4),
    st.lists(st.integers(-1, 1100), min_size=256, max_size=256),
)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([*MODES, "other"]),
    st.dictionaries(
        st.sampled_from(
            [
                "text",
                "html",
                "codes",
                "image",
                "span",
                "prompt",
                "candidates",
                "document",
                "style",
                "size_hint",
                "max_len",
                "samples",
                "top",
                "prefix",
                "mention",
            ]
        ),
        json_values,
    ),
)
def test_any_request_builds_or_raises_prompt_error(loaded, mode, fields):
    _, tok, constraint = loaded
    try:
        prompt = build_prompt(tok, constraint, {"mode": mode, **fields})
    except PromptError:
        return
    assert prompt.mode == mode and (prompt.ids or prompt.parts)


def test_too_long_prompt_is_a_prompt_error(loaded):
    model, tok, constraint = loaded
    request = {"mode": "text_infill", "html": "<p>" + "word " * 2000 + "<mask:0></p>"}
    with pytest.raises(PromptError, match="max_seq_len"):
        run_request(model, tok, constraint, request, 0, GenerationSettings())


@pytest.mark.parametrize("mode", ["entity", "link"])
def test_a_mention_given_by_offsets_is_marked_as_a_link(loaded, mode):
    """`text` + `mention: [start, end]` builds the same prompt as the hand-marked HTML."""
    _, tok, constraint = loaded
    text = "Paris is the capital of France & more."
    by_offsets = build_prompt(
        tok, constraint, {"mode": mode, "text": text, "mention": [0, 5], "candidates": ["P"]}
    )
    html_ = '<p><a title="<mask:0>">Paris</a> is the capital of France &amp; more.</p>'
    by_html = build_prompt(tok, constraint, {"mode": mode, "html": html_, "candidates": ["P"]})
    assert by_offsets.ids == by_html.ids
    for bad in ([5, 5], [0, 99], [0], ["0", 5]):
        with pytest.raises(PromptError):
            build_prompt(tok, constraint, {"mode": mode, "text": text, "mention": bad, "candidates": ["P"]})
