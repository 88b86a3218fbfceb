"""WARC records written for tests and the sample corpus read back as the page or image they hold."""

from pipeline.items import ImageRecord, Page
from pipeline.readers import read_input
from pipeline.warc_writer import http_response, warc_record, warcinfo_record


def test_written_records_read_back_as_their_page_and_image(tmp_path):
    path = tmp_path / "small.warc.gz"
    path.write_bytes(
        warcinfo_record("a test")
        + warc_record("https://a.example/", http_response(b"<p>Caf\xe9</p>", "text/html; charset=latin-1"))
        + warc_record("https://a.example/x.png", http_response(b"\x89PNG data", "image/png"))
    )
    items = [item for item in read_input(str(path)) if isinstance(item, (Page, ImageRecord))]
    assert items == [
        Page("https://a.example/", "warc", b"<p>Caf\xe9</p>", "latin-1"),
        ImageRecord("https://a.example/x.png", b"\x89PNG data"),
    ]
