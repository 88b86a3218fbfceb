"""URL helpers of `minimize` (CM3 §3.1 keeps links and images, resolved to absolute URLs): one page's links
and image srcs resolved against its URL and `<base href>`, with the caches a page's repeated hrefs hit."""

from urllib.parse import urljoin, urlsplit

from lxml import etree

from .rules import LAZY_SRC_ATTRS, PLACEHOLDER_CHARS

_base_href = etree.XPath("string((//base[@href])[1]/@href)")


class PageUrls:
    def __init__(self, root: etree._Element, url: str | None, max_data_uri_bytes: int):
        self.max_data_uri_bytes = max_data_uri_bytes
        self.base = url
        try:
            self.host = urlsplit(url).hostname if url else None
        except ValueError:
            self.host = None
        base = _base_href(root).strip()
        if base:
            try:
                self.base = urljoin(self.base or "", base) or self.base
            except ValueError:  # an invalid IPv6 host in <base>
                pass
        try:
            self.base_host = urlsplit(self.base).hostname if self.base else None
        except ValueError:
            self.base_host = None
        self._joined: dict[str, str | None] = {}
        self._hosts: dict[str, str] = {}
        self._homes: dict[str, bool] = {}
        self._image_srcs: dict[etree._Element, str | None] = {}

    def resolve(self, href: str) -> str | None:
        """Absolute URL against the page URL / <base href>; None for javascript: and other non-links."""
        if href.startswith(("http://", "https://")):
            return href
        cached = self._joined.get(href, False)
        if cached is not False:
            return cached
        low = href[:11].lower()
        if low.startswith(("javascript:", "vbscript:", "data:")):
            out = None
        else:
            try:
                out = urljoin(self.base, href) if self.base else href
            except ValueError:  # e.g. an invalid IPv6 host
                out = None
        self._joined[href] = out
        return out

    def image_src(self, img: etree._Element) -> str | None:
        """The real image of an <img>: lazy-loading attributes win over a placeholder src (cached per img)."""
        if img in self._image_srcs:
            return self._image_srcs[img]
        src = self._find_image_src(img)
        self._image_srcs[img] = src
        return src

    def _find_image_src(self, img: etree._Element) -> str | None:
        src = (img.get("src") or "").strip()
        if not src or (src[:5].lower() == "data:" and len(src) < PLACEHOLDER_CHARS):
            src = ""  # lazy loading: the real image is in a data-* attribute or srcset
            for name in LAZY_SRC_ATTRS:
                lazy = (img.get(name) or "").strip()
                if lazy and lazy[:5].lower() != "data:":
                    src = lazy
                    break
            else:
                candidates = (img.get("srcset") or img.get("data-srcset") or "").split(",")[0].split()
                src = candidates[0] if candidates else ""
        if not src:
            return None
        if src[:5].lower() == "data:":
            if len(src) > self.max_data_uri_bytes or src[5:11].lower() != "image/":
                return None
            return "".join(src.split())
        resolved = self.resolve(src)
        if resolved is None or not resolved.startswith(("http://", "https://")):
            return None
        return resolved

    def is_home_page(self, href: str) -> bool:
        """href leads to this site's home page (cached per href: a page links its logo the same way)."""
        home = self._homes.get(href)
        if home is None:
            resolved = self.resolve(href.strip())
            try:
                parts = urlsplit(resolved) if resolved is not None else None
            except ValueError:
                parts = None
            home = self._homes[href] = (
                parts is not None
                and parts.hostname == self.host
                and parts.path in ("", "/")
                and not parts.query
            )
        return home

    def links_within_site(self, el: etree._Element) -> bool:
        """The one link in el points to this site (another page of it, or an anchor on this one)."""
        link = el if el.tag == "a" else next(el.iter("a"), None)
        href = (link.get("href") or "").strip() if link is not None else ""
        if not href or self.host is None or href[:11].lower().startswith(("javascript:", "mailto:", "tel:")):
            return False
        if "//" not in href[:8]:  # relative: resolved against this page (or its <base>)
            return self.base_host == self.host
        host = self._hosts.get(href)
        if host is None:  # what urlsplit(href).hostname gives, without building the whole split
            authority = href.split("//", 1)[1]
            for end in "/?#":
                authority = authority.split(end, 1)[0]
            host = self._hosts[href] = authority.rpartition("@")[2].split(":", 1)[0].lower()
        return host == self.host
