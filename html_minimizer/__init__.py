"""Raw web HTML -> CM3 minimal HTML (Aghajanyan et al. 2022, section 3.1): structure, text and images kept,
boilerplate, scripts and non-structured attributes removed, deterministic serialisation."""

from .errors import EmptyDocument, InputTooLarge, MinimizeError, NotHTML
from .images import replace_images
from .limits import Limits
from .page import ImageRef, MinimalPage

__all__ = [
    "EmptyDocument",
    "ImageRef",
    "InputTooLarge",
    "Limits",
    "MinimalPage",
    "MinimizeError",
    "NotHTML",
    "replace_images",
]
