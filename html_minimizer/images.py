"""Rewriting `<img src>` in minimal HTML (the pipeline writes the 256 VQGAN codes into src with it)."""

from collections.abc import Mapping

from lxml import etree

from .tree import parse_minimal_or_empty, prune_empty_elements, remove_keeping_tail, serialize


def replace_images(html: str, new_src: Mapping[str, str | None]) -> str:
    """Give each `<img>` whose src is a key of `new_src` that value as src; a None value removes the `<img>`.

    The removed image's tail text stays in place; images whose src is not a key are left untouched.
    The result uses the same deterministic serialisation as `minimize`.
    """
    root = parse_minimal_or_empty(html)
    _replace(root, new_src)
    return serialize(root)


def replace_images_and_prune(html: str, new_src: Mapping[str, str | None]) -> tuple[str, int]:
    """`prune_empty(replace_images(html, new_src))` on one parsed tree: the image rewrite and the final
    empty-element rule of the job and the opt-out replay, parsed and serialised once."""
    root = parse_minimal_or_empty(html)
    _replace(root, new_src)
    removed = prune_empty_elements(root)
    return serialize(root), removed


def _replace(root: etree._Element, new_src: Mapping[str, str | None]) -> None:
    for img in list(root.iter("img")):
        src = img.get("src")
        if src is None or src not in new_src:
            continue
        replacement = new_src[src]
        if replacement is None:
            remove_keeping_tail(img)
        else:
            img.set("src", replacement)
