"""Images for CM3: safe fetching, decoding, 256x256 preprocessing and VQGAN codes (taming-transformers).

fetcher = ImageFetcher(FetchOptions())
result = fetcher.fetch(url)                      # FetchResult, never raises for web problems
pixels = preprocess(decode_image(result.data), seed_key=url)
vq = load_vqgan()                                # bundled small model; or a taming .ckpt + yaml
src = codes_to_src(vq.encode(pixels[None])[0])   # the <img src> string of 256 codes

Public names are imported lazily: fetching, decoding and code strings never load torch, so a data-job
worker that does not encode never pays for it.
"""

from importlib import import_module

_EXPORTS = {
    "codes_to_src": "image_tokenizer.codes",
    "is_code_src": "image_tokenizer.codes",
    "src_to_codes": "image_tokenizer.codes",
    "ImageDecodeError": "image_tokenizer.decode",
    "crop": "image_tokenizer.decode",
    "decode_for_crop": "image_tokenizer.decode",
    "decode_image": "image_tokenizer.decode",
    "resized_for_crop": "image_tokenizer.decode",
    "preprocess": "image_tokenizer.decode",
    "to_pixels": "image_tokenizer.decode",
    "FetchOptions": "image_tokenizer.fetch",
    "FetchOutcome": "image_tokenizer.fetch",
    "FetchResult": "image_tokenizer.fetch",
    "ImageFetcher": "image_tokenizer.fetch",
    "model_params_from_config": "image_tokenizer.config",
    "DEFAULT_CHECKPOINT": "image_tokenizer.config",
    "DEFAULT_CONFIG": "image_tokenizer.config",
    "VQGAN": "image_tokenizer.vqgan",
    "load_vqgan": "image_tokenizer.vqgan",
    "resolve_device": "image_tokenizer.vqgan",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'image_tokenizer' has no attribute {name!r}")
