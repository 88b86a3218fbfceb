"""Typed errors: every failure of `minimize` is a `MinimizeError`, so callers can count and skip pages."""


class MinimizeError(ValueError):
    """Base of every error `minimize` raises on bad input (a page to skip, never a crash of the job)."""


class InputTooLarge(MinimizeError):
    """The raw page is larger than `Limits.max_input_bytes`."""


class NotHTML(MinimizeError):
    """The input does not look like text/HTML (binary data, no markup, nothing left to parse)."""


class BadMarkup(MinimizeError):
    """The markup parsed but holds names or characters lxml cannot process (garbage input)."""


class EmptyPage(MinimizeError):
    """Nothing of the page is left: every element was boilerplate or empty (CM3 §3.1's rules)."""
