"""Raw web HTML -> CM3 minimal HTML (Aghajanyan et al. 2022, section 3.1): structure, text and images kept,
boilerplate, scripts and non-structured attributes removed, deterministic serialisation."""

from .core import minimize
from .errors import BadMarkup, EmptyPage, InputTooLarge, MinimizeError, NotHTML
from .images import replace_images, replace_images_and_prune
from .limits import Limits
from .page import ImageRef, MinimalPage
from .tree import all_image_srcs, prune_empty

__all__ = [
    "BadMarkup",
    "EmptyPage",
    "ImageRef",
    "InputTooLarge",
    "Limits",
    "MinimalPage",
    "MinimizeError",
    "NotHTML",
    "all_image_srcs",
    "minimize",
    "prune_empty",
    "replace_images",
    "replace_images_and_prune",
]
