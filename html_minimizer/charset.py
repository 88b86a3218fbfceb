"""Bytes -> clean UTF-8 bytes for libxml2: explicit charset > BOM > <meta> charset > UTF-8 with cp1252 fallback.

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
# browsers read these labels as their supersets (WHATWG Encoding Standard); Python's codecs do not
_SUPERSETS = {
    "ascii": "cp1252",
    "latin_1": "cp1252",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
}
# C0 controls but tab/newline/carriage return, and DEL: not allowed in XML (nor are U+FFFE/U+FFFF)
_CONTROLS = bytes([*range(0, 9), 11, 12, *range(14, 32), 127])
_NONCHARACTERS = re.compile(rb"\xef\xbf[\xbe\xbf]")
_CP1252 = [bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in range(256)]


def _cp1252_bytes(err: UnicodeDecodeError) -> tuple[str, int]:
    """Decode bytes that are not UTF-8 as cp1252 (latin-1 for its 5 holes): pages mixing encodings stay legible."""
    return "".join(_CP1252[b] for b in err.object[err.start : err.end]), err.end


codecs.register_error("html_minimizer.cp1252", _cp1252_bytes)


def text_codec(label: str | None) -> str | None:
    """Python codec name for a charset label, or None when unknown or not a text encoding (base64, rot13)."""
    if not label:
        return None
    try:
        info = codecs.lookup(label.strip().strip("\"'").lower())
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True):
        return None
    return _SUPERSETS.get(info.name, info.name)


def sniff_meta_charset(raw: bytes) -> str | None:
    m = _META_CHARSET.search(raw, 0, _META_SCAN_BYTES)
    codec = text_codec(m.group(1).decode("ascii")) if m else None
    # a <meta> readable as ASCII cannot be honest about UTF-16/32 (WHATWG: read it as UTF-8)
    return "utf-8" if codec and codec.startswith(("utf-16", "utf-32", "utf_16", "utf_32")) else codec


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
    codec = text_codec(charset)
    if codec is None:
        for bom, name in _BOMS:
            if raw.startswith(bom):
                codec, raw = name, raw[len(bom) :]
                break
    if codec is None:
        codec = sniff_meta_charset(raw)
    if codec is None or codec == "utf-8":
        if raw.isascii():
            return "", raw, "utf-8"
        try:
            return raw.decode("utf-8"), raw, "utf-8"
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="html_minimizer.cp1252")
            return text, text.encode("utf-8"), "utf-8+cp1252"
    text = raw.decode(codec, errors="replace")
    return text, text.encode("utf-8", errors="replace"), codec
