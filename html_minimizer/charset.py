"""Bytes -> clean UTF-8 bytes for libxml2: BOM > explicit charset > <meta> charset > UTF-8 with cp1252 fallback.
Charsets are WHATWG encoding labels; any other label is ignored.

The result is always valid UTF-8 without the control characters XML forbids (lxml refuses to store them),
so the parser runs with one fixed encoding and never guesses.
"""

import codecs
import re

from .errors import NotHTML

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# <meta charset=x> and <meta http-equiv content="text/html; charset=x"> within the first 8 KiB
_META_CHARSET = re.compile(rb"<meta\b[^>]{0,512}?charset\s*=\s*[\"']?\s*([a-z0-9_.:-]{1,40})", re.I)
_META_SCAN_BYTES = 8192
# The WHATWG Encoding Standard's labels (https://encoding.spec.whatwg.org/#names-and-labels), by the Python
# codec that decodes their encoding: only these are honoured. Python knows codecs no browser does (idna,
# punycode, utf-7, rot13, undefined) that raise or garble on page bytes. Where Python's codec of the same
# name is a subset (ascii, latin-1, gb2312, euc-kr, shift_jis, big5), the superset browsers use stands in.
# x-user-defined reads as windows-1252, as the HTML standard's prescan says; UTF-16 labels in a <meta> read
# as UTF-8 (see sniff_meta_charset).
_WHATWG_ENCODINGS = {
    "utf-8": "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8",
    "cp866": "866 cp866 csibm866 ibm866",
    "iso8859-2": "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 iso_8859-2:1987 l2 latin2",
    "iso8859-3": "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 iso_8859-3:1988 l3 latin3",
    "iso8859-4": "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 iso_8859-4:1988 l4 latin4",
    "iso8859-5": "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 iso_8859-5 "
    "iso_8859-5:1988",
    "iso8859-6": "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 iso-8859-6 iso-8859-6-e "
    "iso-8859-6-i iso-ir-127 iso8859-6 iso88596 iso_8859-6 iso_8859-6:1987",
    "iso8859-7": "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 iso8859-7 iso88597 "
    "iso_8859-7 iso_8859-7:1987 sun_eu_greek",
    "iso8859-8": "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 iso8859-8 iso88598 "
    "iso_8859-8 iso_8859-8:1988 visual csiso88598i iso-8859-8-i logical",
    "iso8859-10": "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6",
    "iso8859-13": "iso-8859-13 iso8859-13 iso885913",
    "iso8859-14": "iso-8859-14 iso8859-14 iso885914",
    "iso8859-15": "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9",
    "iso8859-16": "iso-8859-16",
    "koi8-r": "cskoi8r koi koi8 koi8-r koi8_r",
    "koi8-u": "koi8-ru koi8-u",
    "mac-roman": "csmacintosh mac macintosh x-mac-roman",
    "cp874": "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874",
    "cp1250": "cp1250 windows-1250 x-cp1250",
    "cp1251": "cp1251 windows-1251 x-cp1251",
    "cp1252": "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 iso8859-1 iso88591 "
    "iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii windows-1252 x-cp1252 x-user-defined",
    "cp1253": "cp1253 windows-1253 x-cp1253",
    "cp1254": "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 iso_8859-9:1989 l5 "
    "latin5 windows-1254 x-cp1254",
    "cp1255": "cp1255 windows-1255 x-cp1255",
    "cp1256": "cp1256 windows-1256 x-cp1256",
    "cp1257": "cp1257 windows-1257 x-cp1257",
    "cp1258": "cp1258 windows-1258 x-cp1258",
    "mac-cyrillic": "x-mac-cyrillic x-mac-ukrainian",
    "gb18030": "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk gb18030",
    "big5hkscs": "big5 big5-hkscs cn-big5 csbig5 x-x-big5",
    "euc_jp": "cseucpkdfmtjapanese euc-jp x-euc-jp",
    "iso2022_jp": "csiso2022jp iso-2022-jp",
    "cp932": "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis",
    "cp949": "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 ksc5601 ksc_5601 "
    "windows-949",
    "utf-16-be": "unicodefffe utf-16be",
    "utf-16-le": "csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 utf-16le",
}
# labels of the standard's "replacement" encoding (ISO-2022-KR/CN, HZ): a browser shows one U+FFFD
_REPLACEMENT_LABELS = frozenset(
    "csiso2022kr hz-gb-2312 iso-2022-cn iso-2022-cn-ext iso-2022-kr replacement".split()
)
_WHATWG_LABELS = {label: codec for codec, labels in _WHATWG_ENCODINGS.items() for label in labels.split()}
# C0 controls but tab/newline/carriage return, and DEL: not allowed in XML (nor are U+FFFE/U+FFFF)
_CONTROLS = bytes([*range(0, 9), 11, 12, *range(14, 32), 127])
_NONCHARACTERS = re.compile(rb"\xef\xbf[\xbe\xbf]")
# Bytes that are not UTF-8 read as cp1252 (latin-1 for its 5 holes): pages mixing encodings stay legible.
# The decoder's built-in surrogateescape handler marks each such byte b as U+DC00+b in C; the marks become
# cp1252 by one error handler call per run of them when runs are few, by one str.translate (a fixed cost per
# character) when they are many. (A handler called per invalid byte took 5 s for 5 MB of them.)
_CP1252 = "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in range(128, 256))
# indexed by code point: itself below the marks, cp1252 for a mark; a str table translates twice as fast as a
# dict (a miss, for every character but the marks, raises inside str.translate); code points past it stay
_CP1252_FOR_ESCAPED = "".join(map(chr, range(0xDC80))) + _CP1252
# a handler call costs about as much as translating 16 characters
_CHARS_PER_HANDLER_CALL = 16


def _escaped_bytes_as_cp1252(err: UnicodeEncodeError) -> tuple[bytes, int]:
    return err.object[err.start : err.end].translate(_CP1252_FOR_ESCAPED).encode("utf-8"), err.end


codecs.register_error("html_minimizer.cp1252", _escaped_bytes_as_cp1252)


def _utf8_with_cp1252(raw: bytes) -> tuple[str, bytes]:
    """(text with U+DC80-U+DCFF marking invalid bytes, its UTF-8 bytes with those bytes read as cp1252)."""
    text = raw.decode("utf-8", errors="surrogateescape")
    n_escaped = len(raw) - len(text.encode("utf-8", errors="ignore"))
    if n_escaped * _CHARS_PER_HANDLER_CALL > len(text):
        return text, text.translate(_CP1252_FOR_ESCAPED).encode("utf-8")
    return text, text.encode("utf-8", errors="html_minimizer.cp1252")


def text_codec(label: str | None) -> str | None:
    """Python codec for a WHATWG encoding label; None for any other label (the usual detection applies).

    Raises NotHTML for the labels of the standard's replacement encoding: a browser shows no content."""
    if not label:
        return None
    label = label.strip("\t\n\f\r \"'").lower()
    if label in _REPLACEMENT_LABELS:
        raise NotHTML(f"charset {label!r}: the WHATWG replacement encoding (no readable content)")
    return _WHATWG_LABELS.get(label)


def sniff_meta_charset(raw: bytes) -> str | None:
    m = _META_CHARSET.search(raw, 0, _META_SCAN_BYTES)
    codec = text_codec(m.group(1).decode("ascii")) if m else None
    # a <meta> readable as ASCII cannot be honest about UTF-16/32 (WHATWG: read it as UTF-8)
    return "utf-8" if codec in ("utf-16-le", "utf-16-be") else codec


def to_clean_utf8(raw: bytes | str, charset: str | None = None) -> tuple[bytes, str]:
    """Return (valid UTF-8 bytes without XML-forbidden characters, name of the encoding used).

    Raises NotHTML for binary data: more than 5% control characters in the first KiB once decoded
    (images, archives; UTF-16 text decodes without them)."""
    if isinstance(raw, str):
        text, data, used = raw, raw.encode("utf-8", errors="replace"), "unicode"
    else:
        text, data, used = _decode_bytes(raw, charset)
    head = data[:1024]
    if len(head) - len(head.translate(None, _CONTROLS)) > len(head) // 20:
        raise NotHTML("binary data (control characters in its first KiB)")
    data = data.translate(None, _CONTROLS)
    # searching the decoded text is faster than searching UTF-8 bytes, where \xef is frequent
    if "\ufffe" in text or "\uffff" in text:
        data = _NONCHARACTERS.sub(b"", data)
    return data, used


def _decode_bytes(raw: bytes, charset: str | None) -> tuple[str, bytes, str]:
    """(decoded text, empty for pure ASCII; its UTF-8 bytes; name of the encoding used)."""
    codec = None
    for bom, name in _BOMS:  # a byte order mark wins over any label (WHATWG Encoding Standard, "decode")
        if raw.startswith(bom):
            codec, raw = name, raw[len(bom) :]
            break
    if codec is None:
        codec = text_codec(charset) or sniff_meta_charset(raw)
    if codec is None or codec == "utf-8":
        if raw.isascii():
            return "", raw, "utf-8"
        try:
            return raw.decode("utf-8"), raw, "utf-8"
        except UnicodeDecodeError:
            # the marks in text are no noncharacters, which is all to_clean_utf8 looks for in it
            return *_utf8_with_cp1252(raw), "utf-8+cp1252"
    text = raw.decode(codec, errors="replace")
    return text, text.encode("utf-8", errors="replace"), codec
