"""codes <-> `<img src>` strings: exact round trip, strict validation."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from image_tokenizer import codes_to_src, is_code_src, src_to_codes

codes_256 = st.lists(st.integers(min_value=0, max_value=16383), min_size=256, max_size=256)


@given(codes_256)
def test_round_trip(codes):
    src = codes_to_src(codes)
    assert src_to_codes(src) == codes and src_to_codes(src, 16384) == codes
    assert is_code_src(src) and "  " not in src and src == src.strip()


@given(codes_256)
def test_out_of_range_for_a_smaller_codebook(codes):
    src = codes_to_src(codes)
    assert is_code_src(src, 1024) == (max(codes) < 1024)


@given(st.text(max_size=2000))
def test_random_text_is_either_valid_or_rejected(text):
    try:
        codes = src_to_codes(text)
    except ValueError:
        assert not is_code_src(text)
    else:
        assert codes_to_src(codes) == text


VALID = " ".join(["7"] * 256)


@pytest.mark.parametrize(
    "src",
    [
        "",
        " ".join(["7"] * 255),
        " ".join(["7"] * 257),
        VALID.replace(" ", "  ", 1),
        VALID + " ",
        " " + VALID,
        VALID.replace("7", "07", 1),
        VALID.replace("7", "-7", 1),
        VALID.replace("7", "+7", 1),
        VALID.replace("7", "\u0667", 1),  # Arabic-Indic digit seven: isdigit() but not ASCII
        VALID.replace(" ", "\t", 1),
        "https://example.org/cat.png",
    ],
)
def test_rejected_forms(src):
    assert not is_code_src(src)
    with pytest.raises(ValueError):
        src_to_codes(src)


def test_codes_to_src_validates():
    assert codes_to_src(range(256)).startswith("0 1 2 ")
    with pytest.raises(ValueError):
        codes_to_src([1] * 16)
    with pytest.raises(ValueError):
        codes_to_src([-1] + [0] * 255)
