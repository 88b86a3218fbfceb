"""data: URIs are decoded in process, with the same caps and typed outcomes as HTTP fetches."""

import base64
import io

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from image_tokenizer import FetchOptions, ImageFetcher, decode_image


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (0, 128, 255)).save(buffer, "PNG")
    return buffer.getvalue()


def test_base64_image():
    data = png_bytes()
    result = ImageFetcher().fetch("data:image/png;base64," + base64.b64encode(data).decode())
    assert result.ok and result.data == data and result.content_type == "image/png"
    assert decode_image(result.data).getpixel((0, 0)) == (0, 128, 255)


def test_percent_encoded_payload():
    result = ImageFetcher().fetch("data:image/x-test,%89PNG%0D%0A")
    assert result.ok and result.data == b"\x89PNG\r\n"


def test_typed_failures():
    fetcher = ImageFetcher(FetchOptions(max_bytes=100))
    assert fetcher.fetch("data:text/plain,hello").outcome == "not_image"
    assert fetcher.fetch("data:,hello").outcome == "not_image"  # the default type is text/plain
    assert fetcher.fetch("data:image/svg+xml,<svg/>").outcome == "not_image"
    assert fetcher.fetch("data:image/png;base64,@@@").outcome == "bad_url"
    assert fetcher.fetch("data:image/png;base64").outcome == "bad_url"
    assert fetcher.fetch("data:image/png;base64," + "A" * 400).outcome == "too_large"
    assert fetcher.stats == {"not_image": 3, "bad_url": 2, "too_large": 1}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_data_uri_gives_a_typed_result(payload):
    result = ImageFetcher(FetchOptions(max_bytes=64)).fetch("data:" + payload)
    assert result.outcome in {"ok", "not_image", "bad_url", "too_large"}
    assert result.ok == (result.outcome == "ok") and (result.data is not None) == result.ok
