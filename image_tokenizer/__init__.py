"""Images for CM3: safe fetching, decoding, 256x256 preprocessing and VQGAN codes (taming-transformers).

fetcher = ImageFetcher(FetchOptions())
result = fetcher.fetch(url)                      # FetchResult, never raises for web problems
pixels = preprocess(decode_image(result.data), seed_key=url)
vq = load_vqgan()                                # bundled small model; or a taming .ckpt + yaml
src = codes_to_src(vq.encode(pixels[None])[0])   # the <img src> string of 256 codes
"""

from image_tokenizer.codes import codes_to_src, is_code_src, src_to_codes
from image_tokenizer.decode import ImageDecodeError, decode_image, preprocess
from image_tokenizer.fetch import FetchOptions, FetchOutcome, FetchResult, ImageFetcher
from image_tokenizer.vqgan import DEFAULT_CHECKPOINT, VQGAN, load_vqgan, resolve_device

__all__ = [
    "DEFAULT_CHECKPOINT",
    "VQGAN",
    "FetchOptions",
    "FetchOutcome",
    "FetchResult",
    "ImageDecodeError",
    "ImageFetcher",
    "codes_to_src",
    "decode_image",
    "is_code_src",
    "load_vqgan",
    "preprocess",
    "resolve_device",
    "src_to_codes",
]
