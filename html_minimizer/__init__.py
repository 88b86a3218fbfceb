"""Raw web HTML -> CM3 minimal HTML (Aghajanyan et al. 2022, section 3.1): structure, text and images kept,
boilerplate, scripts and non-structured attributes removed, deterministic serialisation."""

from .core import minimize
from .errors import BadMarkup, InputTooLarge, MinimizeError, NotHTML
from .images import prune_empty, replace_images, replace_images_and_prune
from .limits import Limits
from .page import ImageRef, MinimalPage

__all__ = [
    "BadMarkup",
    "ImageRef",
    "InputTooLarge",
    "Limits",
    "MinimalPage",
    "MinimizeError",
    "NotHTML",
    "minimize",
    "prune_empty",
    "replace_images",
    "replace_images_and_prune",
]
