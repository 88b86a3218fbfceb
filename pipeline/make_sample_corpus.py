"""Writes the bundled sample corpus (pipeline/data/sample_corpus/), used by `cm3-data run` without --input.

- news.warc.gz: news-like pages written for this project (English prose, several paragraphs, with nav,
  footer, cookie banner and related-links boilerplate), a syndicated paragraph shared by several pages
  (span dedup), one page crawled twice (URL dedup), a German and a French page, a lorem-ipsum page, a stub,
  a page in windows-1252, a binary record labelled text/html; plus the photos as image response records
  (scikit-image sample images, downscaled JPEG), one truncated image record, one unused image record.
- enwiki-sample.ndjson.tar.gz: Wikipedia-like articles in the Wikimedia Enterprise HTML dump layout
  (tar.gz of NDJSON: name, url, article_body.html, in_language.identifier ...); their images resolve through
  the WARC's image records (no network).

The prose lives in pipeline/data/sample_corpus_text.json; this file only lays it out as pages. Everything is
deterministic (fixed dates, record ids from URLs, gzip mtime 0), so re-running the script reproduces the
committed bytes. Run: python -m pipeline.make_sample_corpus
"""

from __future__ import annotations

import base64
import gzip
import html
import io
import json
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.warc_writer import http_response, warc_record, warcinfo_record

DATA = Path(__file__).resolve().parent / "data"
OUT = DATA / "sample_corpus"
TEXT = json.loads((DATA / "sample_corpus_text.json").read_text(encoding="utf-8"))
# the paragraph several pages end with: span dedup (T5 section 2.2) keeps its first occurrence only
SYNDICATED: str = TEXT["syndicated"]

SITE = "https://www.harbourtown-herald.example"
MEDIA = "https://media.harbourtown-herald.example/photos"
WIKI = "https://en.wikipedia.org/wiki"
UPLOAD = "https://upload.wikimedia.org/wikipedia/commons"
# skimage name -> URL of the photo; every photo is stored as an image record in the WARC, in this order
PHOTOS = {
    "rocket": f"{MEDIA}/launch-pad.jpg",
    "hubble_deep_field": f"{MEDIA}/deep-field.jpg",
    "coffee": f"{MEDIA}/morning-cup.jpg",
    "chelsea": f"{MEDIA}/shelter-cat.jpg",
    "astronaut": f"{MEDIA}/portrait-gallery.jpg",
    "retina": f"{MEDIA}/eye-scan.jpg",
    "immunohistochemistry": f"{MEDIA}/tissue-sample.jpg",
    "coins": f"{MEDIA}/coin-auction.jpg",
    "moon": f"{UPLOAD}/thumb/e/e1/Full_Moon_Luc_Viatour.jpg",
    "motorcycle_left": f"{MEDIA}/motorcycle-show.jpg",
    "logo": f"{UPLOAD}/thumb/3/38/Scikit_image_logo.png",
    "camera": f"{MEDIA}/photo-club-portrait.jpg",
    "brick": f"{MEDIA}/old-mill-wall.jpg",
    "grass": f"{MEDIA}/park-meadow.jpg",
    "colorwheel": f"{MEDIA}/unused-colour-wheel.jpg",
}
BROKEN_IMAGE = f"{MEDIA}/damaged-upload.jpg"
_SENTENCE_END = re.compile(r"(?<=[a-z])\.(?= [A-Z]|</p>)")


@dataclass(frozen=True)
class Edition:
    """One printing of the corpus: the bundled one (number None), or copy N for benchmarks, which lives
    under other host names and ends every sentence in ", edition N." so that copies share no page, image or
    sentence that dedup would remove."""

    number: int | None = None

    def moved(self, url: str) -> str:
        """The bundled URL on this edition's hosts."""
        if self.number is None:
            return url
        url = url.replace("harbourtown-herald.example", f"copy{self.number}.herald.example")
        return url.replace("wikipedia.org", f"copy{self.number}.wiki.example")

    def reworded(self, html_text: str) -> str:
        """The page as this edition prints it (unchanged for the bundled corpus)."""
        if self.number is None:
            return html_text
        return _SENTENCE_END.sub(f", edition {self.number}.", html_text)

    @property
    def site(self) -> str:
        return self.moved(SITE)

    @property
    def wiki(self) -> str:
        return self.moved(WIKI)

    @property
    def photos(self) -> dict[str, str]:
        return {name: self.moved(url) for name, url in PHOTOS.items()}

    @property
    def broken_image(self) -> str:
        return self.moved(BROKEN_IMAGE)


def jpeg(name: str, max_side: int = 320) -> bytes:
    """A scikit-image sample photo, downscaled and JPEG-encoded (PNG for the logo with alpha)."""
    import skimage.data

    array = (
        skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage.data, name)()
    )
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    image = Image.fromarray(array)
    scale = max_side / max(image.size)
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
    out = io.BytesIO()
    if image.mode == "RGBA":
        image.save(out, format="PNG", optimize=True)
    else:
        image.convert("RGB").save(out, format="JPEG", quality=80, optimize=True)
    return out.getvalue()


def tiny_png_data_uri() -> str:
    y, x = np.mgrid[0:64, 0:64]
    pixels = np.stack([x * 4, y * 4, (x * 7) ^ (y * 13)], axis=-1).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")  # a colour pattern: a real inline image, not a 1x1 placeholder
    out = io.BytesIO()
    image.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def paragraphs(article: dict) -> list[str]:
    return article["paragraphs"] + ([SYNDICATED] if article.get("ends_with_syndicated") else [])


def figure(src: str, alt: str, caption: str) -> str:
    return (
        f'<figure class="article-image"><img src="{html.escape(src)}" alt="{html.escape(alt)}" width="640">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def news_page(article: dict, edition: Edition, image_urls: Mapping[str, str], variant: int = 0) -> str:
    """A news page with realistic boilerplate around the article; image_urls maps its photo names to URLs."""
    title = article["title"]
    figures = "".join(
        figure(image_urls[photo["photo"]], photo["alt"], photo["caption"])
        for photo in article.get("photos", [])
    )
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs(article))
    related = "".join(
        f'<li><a href="{edition.site}/news/{other["slug"]}">{html.escape(other["title"])}</a></li>'
        for other in TEXT["news"][:4]
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} | Harbourtown Herald</title>
<meta property="og:title" content="{html.escape(title)}"><meta property="og:type" content="article">
<meta name="twitter:card" content="summary_large_image">
<link rel="stylesheet" href="/static/site.css"><script src="/static/analytics.js"></script>
<script>window.dataLayer = window.dataLayer || []; function gtag(){{dataLayer.push(arguments);}}</script>
<style>.cookie-banner{{position:fixed;bottom:0}}</style></head>
<body class="article-page">
<div id="cookie-consent" class="cookie-banner">This website uses cookies to improve your experience.
By continuing to browse you agree to our cookie policy. <button>Accept all</button></div>
<header class="site-header"><div class="logo"><a href="/">Harbourtown Herald</a></div>
<nav class="main-nav"><ul><li><a href="/news">News</a></li><li><a href="/sport">Sport</a></li>
<li><a href="/culture">Culture</a></li><li><a href="/weather">Weather</a></li><li><a href="/subscribe">Subscribe</a></li></ul></nav>
</header>
<main><div class="container"><div class="row"><div class="col-main">
<article itemscope itemtype="https://schema.org/NewsArticle">
<h1 itemprop="headline">{html.escape(title)}</h1>
<div class="byline">By the Herald news desk, updated {"14" if variant == 0 else "15"} May 2024</div>
{figures}
<div itemprop="articleBody">{body}</div>
<div class="share-buttons"><a href="#">Share</a> <a href="#">Tweet</a> <a href="#">Email</a></div>
</article></div>
<aside class="sidebar"><h3>Most read</h3><ul>{related}</ul>
<div class="newsletter"><form><input type="email" placeholder="Your email"><button>Sign up</button></form></div></aside>
</div></div></main>
<footer class="site-footer"><p>Copyright 2024 Harbourtown Herald. All rights reserved.</p>
<p><a href="/privacy">Privacy policy</a> | <a href="/terms">Terms of use</a> | <a href="/contact">Contact us</a></p></footer>
</body></html>
"""


def wiki_html(article: dict, edition: Edition) -> str:
    """Parsoid-like article HTML as found in Wikimedia Enterprise dumps (protocol-relative image URLs)."""
    title, photos = article["title"], article["photos"]
    sections = []
    for i, paragraph in enumerate(paragraphs(article)):
        sections.append(f'<section data-mw-section-id="{i}"><p id="mw{i:02d}">{html.escape(paragraph)}</p>')
        if i < len(photos):
            name = photos[i]["photo"]
            src = edition.photos[name].replace("https:", "")
            sections.append(
                f'<figure typeof="mw:File/Thumb"><a href="./File:{name}.jpg" class="mw-file-description">'
                f'<img src="{src}" alt="{html.escape(photos[i]["alt"])}" resource="./File:{name}.jpg" '
                f'data-file-width="320" data-file-height="240" class="mw-file-element"></a>'
                f"<figcaption>{html.escape(photos[i]['caption'])}</figcaption></figure>"
            )
        sections.append("</section>")
    navbox = (
        '<div role="navigation" class="navbox"><table><tr><th>See also</th><td><a href="./Portal:Science">'
        'Science portal</a> · <a href="./Outline">Outline</a></td></tr></table></div>'
    )
    url = f"{edition.wiki}/{title.replace(' ', '_')}"
    return (
        f'<!DOCTYPE html><html prefix="dc: http://purl.org/dc/terms/" about="{url}">'
        f'<head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<link rel="dc:isVersionOf" href="{url}"></head>'
        f'<body lang="en" class="mw-content-ltr mw-parser-output">{"".join(sections)}{navbox}</body></html>'
    )


def build_warc(edition: Edition = Edition()) -> bytes:
    records = [warcinfo_record("cm3-data make_sample_corpus")]

    def page(url: str, text: str, charset: str = "utf-8") -> None:
        body = edition.reworded(text).encode(charset)
        records.append(warc_record(url, http_response(body, f"text/html; charset={charset}")))

    site, special = edition.site, TEXT["special_pages"]
    # the reader-photos page has an inline data: URI image and one whose record is truncated
    image_urls = {
        **edition.photos,
        "reader-pattern": tiny_png_data_uri(),
        "damaged-upload": edition.broken_image,
    }
    for article in TEXT["news"]:
        page(f"{site}/news/{article['slug']}", news_page(article, edition, image_urls))
    # the same URL crawled again a day later (different byline): URL dedup keeps one
    recrawled = TEXT["news"][3]
    page(f"{site}/news/{recrawled['slug']}", news_page(recrawled, edition, image_urls, variant=1))
    page(f"{site}/news/reader-photos", news_page(special["reader_photos"], edition, image_urls))
    # non-English, lorem ipsum, stub and windows-1252 pages
    for article in TEXT["international"]:
        page(f"{site}/international/{article['slug']}", news_page(article, edition, image_urls))
    page(f"{site}/drafts/template", news_page(special["template"], edition, image_urls))
    page(f"{site}/news/missing", news_page(special["not_found"], edition, image_urls))
    tides = special["tide_tables"]
    note = f"<p>{html.escape(tides['note_after_footer'])}</p>"
    page(
        f"{site}/news/tide-tables",
        news_page(tides, edition, image_urls).replace("</body>", f"{note}</body>"),
        charset="windows-1252",
    )
    records.append(
        warc_record(
            f"{site}/downloads/archive.bin",
            http_response(b"\x89PNG\r\n\x1a\n" + b"\x00\x10\xa7" * 900, "text/html"),  # mislabelled binary
        )
    )
    for name, url in edition.photos.items():
        content_type = "image/png" if url.endswith(".png") else "image/jpeg"
        records.append(warc_record(url, http_response(jpeg(name), content_type)))
    damaged = jpeg("coffee")[:600]
    records.append(warc_record(edition.broken_image, http_response(damaged, "image/jpeg")))
    return b"".join(records)


def build_wikipedia_dump(edition: Edition = Edition()) -> bytes:
    lines = []
    for index, article in enumerate(TEXT["wikipedia"]):
        record = {
            "name": article["title"],
            "identifier": 1000 + index,
            "date_modified": "2024-05-01T12:00:00Z",
            "version": {"identifier": 5000 + index},
            "url": f"{edition.wiki}/{article['title'].replace(' ', '_')}",
            "in_language": {"identifier": "en"},
            "is_part_of": {"identifier": "enwiki"},
            "license": [{"name": "Creative Commons Attribution Share Alike 3.0 Unported"}],
            "article_body": {"html": edition.reworded(wiki_html(article, edition)), "wikitext": ""},
        }
        lines.append(json.dumps(record, ensure_ascii=False, sort_keys=True))
    lines.append('{"name": "Broken line", "url": ')  # a truncated NDJSON line: counted, skipped
    payload = ("\n".join(lines) + "\n").encode("utf-8")
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("enwiki_namespace_0_0.ndjson")
        info.size, info.mtime, info.mode = len(payload), 0, 0o644
        tar.addfile(info, io.BytesIO(payload))
    return gzip.compress(tar_bytes.getvalue(), mtime=0)


def corpus_copy(index: int) -> tuple[bytes, bytes]:
    """(WARC, dump) of the same corpus under other host names and with every sentence changed ("..., edition
    N."), so copies are distinct pages, images and prose: for benchmarks, a bigger corpus with the same mix
    whose copies span dedup does not remove."""
    edition = Edition(index)
    return build_warc(edition), build_wikipedia_dump(edition)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "news.warc.gz").write_bytes(build_warc())
    (OUT / "enwiki-sample.ndjson.tar.gz").write_bytes(build_wikipedia_dump())
    for path in sorted(OUT.iterdir()):
        print(f"{path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
