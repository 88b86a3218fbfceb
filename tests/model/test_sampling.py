"""Sampling filters (`model.sampling`): top-k, top-p, seeded and greedy choice, option checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model.generate import (
    BeamOptions,
    SamplingOptions,
    choose_tokens,
    top_k_filter,
    top_p_filter,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = torch.isfinite(top_k_filter(logits, 2))
    assert kept.tolist() == [[False, True, False, True, False]]
    assert torch.equal(top_k_filter(logits, 0), logits)


def test_top_p_keeps_the_nucleus():
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    assert torch.isfinite(top_p_filter(logits, 0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.81)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(top_p_filter(logits, 0.1)).tolist() == [[True, False, False, False]]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-20, 20, allow_nan=False), min_size=2, max_size=40),
    st.floats(0.01, 1.0),
)
def test_top_p_is_the_smallest_set_reaching_p(values, p):
    logits = torch.tensor([values], dtype=torch.float64)
    probs = logits.softmax(-1)[0]
    kept = torch.isfinite(top_p_filter(logits, p))[0]
    assert kept[int(logits.argmax())]
    assert float(probs[kept].sum()) >= p - 1e-9
    # dropping the least likely kept token falls below p (unless it is the only one)
    if kept.sum() > 1:
        weakest = float(probs[kept].min())
        assert float(probs[kept].sum()) - weakest < p + 1e-9


def test_choose_tokens_greedy_and_seeded_sampling():
    logits = torch.tensor([[0.1, 2.0, 0.3], [3.0, 0.0, 0.0]])
    assert choose_tokens(logits, SamplingOptions(temperature=0), None).tolist() == [1, 0]
    draws = [
        choose_tokens(logits, SamplingOptions(), torch.Generator().manual_seed(7)).tolist() for _ in range(2)
    ]
    assert draws[0] == draws[1]
    probs = torch.tensor([[0.6, 0.3, 0.1]])
    gen = torch.Generator().manual_seed(0)
    counts = np.bincount(
        [int(choose_tokens(probs.log(), SamplingOptions(), gen)) for _ in range(3000)], minlength=3
    )
    assert np.allclose(counts / 3000, [0.6, 0.3, 0.1], atol=0.04)
    top1 = {int(choose_tokens(probs.log(), SamplingOptions(top_k=1), gen)) for _ in range(50)}
    assert top1 == {0}


def test_options_reject_bad_values():
    with pytest.raises(ValueError):
        SamplingOptions(top_p=0.0)
    with pytest.raises(ValueError):
        SamplingOptions(temperature=-1)
    with pytest.raises(ValueError):
        BeamOptions(num_beams=0)
