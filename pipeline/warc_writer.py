"""Writes WARC/1.0 records the way crawlers store them: one gzip member per record, an HTTP response inside.

Used to build the bundled sample corpus and, in tests and benchmarks, small WARC files made on the spot.
Record ids come from the URL and block length and the gzip header carries mtime 0, so the same records
give the same bytes on every run.
"""

from __future__ import annotations

import gzip
import uuid

WARC_DATE = "2024-05-14T09:30:00Z"
HTTP_DATE = "Tue, 14 May 2024 09:30:00 GMT"


def http_response(body: bytes, content_type: str) -> bytes:
    """An HTTP/1.1 200 response with the given body, as a WARC response record holds it."""
    head = (
        "HTTP/1.1 200 OK\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Date: {HTTP_DATE}\r\n"
        "Server: nginx\r\n\r\n"
    )
    return head.encode("latin-1") + body


def warc_record(
    url: str, block: bytes, warc_type: str = "response", content_type: str | None = None
) -> bytes:
    """One gzip member holding one WARC/1.0 record (deterministic id, date and gzip header)."""
    content_type = content_type or "application/http; msgtype=response"
    record_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{warc_type}:{url}:{len(block)}")
    head = (
        "WARC/1.0\r\n"
        f"WARC-Type: {warc_type}\r\n"
        f"WARC-Record-ID: <urn:uuid:{record_id}>\r\n"
        f"WARC-Date: {WARC_DATE}\r\n"
        f"WARC-Target-URI: {url}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(block)}\r\n\r\n"
    )
    return gzip.compress(head.encode("utf-8") + block + b"\r\n\r\n", mtime=0)


def warcinfo_record(software: str) -> bytes:
    """The warcinfo record that opens a WARC file, naming the software that wrote it."""
    fields = f"software: {software}\r\nformat: WARC File Format 1.0\r\n".encode()
    return warc_record("urn:warcinfo", fields, "warcinfo", "application/warc-fields")
