"""ImageFetcher against a real HTTP server on 127.0.0.1 (no other address is ever contacted)."""

from __future__ import annotations

import io
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from image_tokenizer import FetchOptions, ImageFetcher, decode_image

PNG = io.BytesIO()
Image.new("RGB", (8, 8), (200, 10, 10)).save(PNG, "PNG")
PNG_BYTES = PNG.getvalue()

# Every socket connect in this process, recorded by an audit hook (hooks cannot be removed; it only appends).
CONNECTS: list[tuple] = []


def _record_connect(event: str, args: tuple) -> None:
    if event == "socket.connect":
        CONNECTS.append(args[1])


sys.addaudithook(_record_connect)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: dict[str, int] = {}

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes = b"", content_type: str = "image/png", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path
        Handler.hits[path] = Handler.hits.get(path, 0) + 1
        if path in ("/img.png", "/allowed/img.png", "/private/img.png"):
            self._send(200, PNG_BYTES)
        elif path == "/robots.txt":
            self._send(200, b"User-agent: *\nDisallow: /private/\n", "text/plain")
        elif path == "/octet":
            self._send(200, PNG_BYTES, "application/octet-stream")
        elif path == "/redirect-ok":
            self._send(302, Location="/img.png")
        elif path == "/redirect-private":
            self._send(302, Location="http://10.0.0.1/secret.png")
        elif path == "/redirect-metadata":
            self._send(301, Location="http://169.254.169.254/latest/meta-data/")
        elif path == "/redirect-localhost":
            self._send(302, Location=f"http://localhost:{self.server.server_port}/img.png")
        elif path.startswith("/loop"):
            self._send(302, Location=f"/loop{int(path[5:] or 0) + 1}")
        elif path == "/html":
            self._send(200, b"<html><body>hi</body></html>", "text/html; charset=utf-8")
        elif path == "/svg":
            self._send(200, b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")
        elif path == "/missing":
            self._send(404, b"no", "text/plain")
        elif path == "/error":
            self._send(500, b"boom", "text/plain")
        elif path == "/busy-then-ok":
            if Handler.hits[path] == 1:
                self._send(429, b"", "text/plain", Retry_After="0")
            else:
                self._send(200, PNG_BYTES)
        elif path == "/busy-for-an-hour":
            self._send(503, b"", "text/plain", Retry_After="3600")
        elif path == "/noai":
            self._send(200, PNG_BYTES, X_Robots_Tag="noai")
        elif path == "/noimageai-for-us":
            self._send(200, PNG_BYTES, X_Robots_Tag="otherbot: noindex, cm3-data: noimageai")
        elif path == "/noai-for-otherbot":
            self._send(200, PNG_BYTES, X_Robots_Tag="otherbot: noai")
        elif path == "/huge-declared":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(10**10))
            self.end_headers()
        elif path == "/endless":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"x" * 65536
            try:
                while True:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                pass
        elif path == "/slow-drip":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
        elif path == "/drip-headers":  # status line and headers one byte at a time, 8 s in all
            head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nX-Pad: " + b"a" * 40 + b"\r\n\r\n"
            try:
                for byte in head[:80]:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
            self.close_connection = True
        else:
            self._send(404, b"", "text/plain")


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """The fetcher hangs up on purpose (byte caps, timeouts); no traceback noise for that."""


@pytest.fixture(scope="module")
def server():
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def local_fetcher(**overrides) -> ImageFetcher:
    """Loopback is exempted explicitly; every other non-public address stays refused."""
    options = {"allowed_networks": ("127.0.0.0/8",), "per_host_interval": 0.0, "backoff_seconds": 0.01}
    return ImageFetcher(FetchOptions(**{**options, **overrides}))


def connects_to(host: str) -> list[tuple]:
    return [address for address in CONNECTS if address[0] == host]


def test_ok_image_and_decodes(server):
    fetcher = local_fetcher()
    result = fetcher.fetch(server + "/img.png")
    assert result.ok and result.outcome == "ok" and result.data == PNG_BYTES
    assert decode_image(result.data).size == (8, 8)
    assert fetcher.fetch(server + "/octet").ok  # untyped bytes are left to the decoder's sniffing
    assert fetcher.stats["ok"] == 2


def test_follows_a_redirect(server):
    result = local_fetcher().fetch(server + "/redirect-ok")
    assert result.ok and result.data == PNG_BYTES and result.url == server + "/redirect-ok"


@pytest.mark.parametrize(
    ("path", "refused_ip"),
    [("/redirect-private", "10.0.0.1"), ("/redirect-metadata", "169.254.169.254")],
)
def test_redirect_to_private_address_is_refused_before_connecting(server, path, refused_ip):
    fetcher = local_fetcher()
    result = fetcher.fetch(server + path)
    assert not result.ok and result.outcome == "refused_host" and refused_ip in result.detail
    assert connects_to(refused_ip) == []
    assert fetcher.stats == {"refused_host": 1}


def test_private_hosts_refused_by_default_without_connecting(server):
    port = server.rsplit(":", 1)[1]
    before = len(connects_to("127.0.0.1"))
    fetcher = ImageFetcher(FetchOptions(per_host_interval=0.0))
    for url in (
        server + "/img.png",
        f"http://localhost:{port}/img.png",  # DNS answer 127.0.0.1: checked after resolution
        "http://10.0.0.1/x.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x.png",
        "http://[::ffff:127.0.0.1]/x.png",
        "http://0.0.0.0/x.png",
        "http://224.0.0.1/x.png",
    ):
        result = fetcher.fetch(url)
        assert result.outcome == "refused_host", (url, result)
    assert len(connects_to("127.0.0.1")) == before
    assert connects_to("10.0.0.1") == [] and connects_to("169.254.169.254") == []
    assert fetcher.stats == {"refused_host": 8}


@pytest.mark.parametrize(
    "host",
    [
        "[::127.0.0.1]",  # IPv4-compatible
        "[::ffff:0:7f00:1]",  # IPv4-translated
        "[64:ff9b::7f00:1]",  # NAT64 well-known prefix
        "[64:ff9b:1::7f00:1]",  # NAT64 local use
        "[2002:7f00:1::1]",  # 6to4
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo
        "[2606:4700:1:2:0:5efe:7f00:1]",  # ISATAP interface id
        "[fec0::1]",  # site-local
    ],
)
def test_ipv6_forms_of_loopback_are_refused_without_connecting(host):
    fetcher = ImageFetcher(FetchOptions(per_host_interval=0.0))
    result = fetcher.fetch(f"http://{host}/x.png")
    assert result.outcome == "refused_host", result
    assert connects_to(host.strip("[]")) == []


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f.1", "127.1", "0x7f000001"])
def test_odd_ipv4_notations_are_checked_as_the_address_they_resolve_to(server, host):
    port = server.rsplit(":", 1)[1]
    before = len(connects_to("127.0.0.1"))
    strict = ImageFetcher(FetchOptions(per_host_interval=0.0))
    assert strict.fetch(f"http://{host}:{port}/img.png").outcome == "refused_host"
    assert len(connects_to("127.0.0.1")) == before
    # The resolver reads them as 127.0.0.1: exempting loopback reaches this very server.
    assert local_fetcher().fetch(f"http://{host}:{port}/img.png").ok


def test_redirect_to_a_name_resolving_to_loopback_is_refused(server):
    # Only 127.0.0.1 itself is exempted by IP here; the redirect's name is resolved and checked too.
    fetcher = local_fetcher(allowed_networks=("127.0.0.1/32",))
    assert fetcher.fetch(server + "/redirect-localhost").ok  # localhost -> 127.0.0.1 is in the exemption
    strict = ImageFetcher(FetchOptions(per_host_interval=0.0, allowed_networks=("127.0.0.2/32",)))
    assert strict.fetch(server + "/redirect-localhost").outcome == "refused_host"


def test_too_many_redirects(server):
    result = local_fetcher(max_redirects=3).fetch(server + "/loop0")
    assert result.outcome == "too_many_redirects"


@pytest.mark.parametrize(
    ("path", "outcome"),
    [("/html", "not_image"), ("/svg", "not_image"), ("/missing", "bad_status"), ("/error", "bad_status")],
)
def test_typed_failures(server, path, outcome):
    fetcher = local_fetcher()
    result = fetcher.fetch(server + path)
    assert (result.ok, result.outcome, result.data) == (False, outcome, None)
    assert fetcher.stats[outcome] == 1


def test_server_error_is_retried_then_counted(server):
    Handler.hits.pop("/error", None)
    result = local_fetcher(retries=2).fetch(server + "/error")
    assert result.outcome == "bad_status" and "500" in result.detail
    assert Handler.hits["/error"] == 3


def test_429_retried_honouring_retry_after(server):
    result = local_fetcher().fetch(server + "/busy-then-ok")
    assert result.ok and Handler.hits["/busy-then-ok"] == 2


def test_retry_after_beyond_cap_gives_up_without_waiting(server):
    started = time.monotonic()
    result = local_fetcher(max_retry_after=5).fetch(server + "/busy-for-an-hour")
    assert result.outcome == "bad_status" and time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("path", "ok"), [("/noai", False), ("/noimageai-for-us", False), ("/noai-for-otherbot", True)]
)
def test_x_robots_tag_opt_out(server, path, ok):
    result = local_fetcher().fetch(server + path)
    assert result.ok is ok and result.outcome == ("ok" if ok else "robots_optout")


def test_robots_txt_checked_and_cached(server):
    fetcher = local_fetcher(check_robots_txt=True)
    Handler.hits.pop("/robots.txt", None)
    assert fetcher.fetch(server + "/private/img.png").outcome == "robots_disallowed"
    assert fetcher.fetch(server + "/allowed/img.png").ok
    assert Handler.hits["/robots.txt"] == 1


def test_declared_too_large_is_refused_before_reading(server):
    assert local_fetcher().fetch(server + "/huge-declared").outcome == "too_large"


def test_endless_body_is_capped(server):
    started = time.monotonic()
    result = local_fetcher(max_bytes=1_000_000).fetch(server + "/endless")
    assert result.outcome == "too_large" and time.monotonic() - started < 10


def test_slow_drip_hits_total_timeout(server):
    started = time.monotonic()
    result = local_fetcher(total_timeout=1.0, read_timeout=5.0).fetch(server + "/slow-drip")
    assert result.outcome == "timeout"
    assert time.monotonic() - started < 3


def test_dripped_headers_hit_total_timeout(server):
    """The deadline covers the status line and headers too, not only the body."""
    started = time.monotonic()
    result = local_fetcher(total_timeout=1.0, read_timeout=5.0).fetch(server + "/drip-headers")
    assert result.outcome == "timeout", result
    assert time.monotonic() - started < 2


def test_slow_connect_and_silent_tls_handshake_share_one_total_timeout():
    """A listener whose accept queue is full drops the first SYN (Linux resends it after 1 s); once in, it
    never answers the TLS ClientHello. Connect and handshake together must stay within total_timeout."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    queued = socket.create_connection(("127.0.0.1", port))  # fills the accept queue
    freed = threading.Timer(0.3, lambda: listener.accept()[0].close())  # room for the resent SYN
    freed.start()
    try:
        started = time.monotonic()
        result = local_fetcher(total_timeout=1.5, connect_timeout=5.0).fetch(
            f"https://127.0.0.1:{port}/x.png"
        )
        elapsed = time.monotonic() - started
    finally:
        freed.join()
        queued.close()
        listener.close()
    assert result.outcome == "timeout", result
    assert elapsed < 2.0


def test_per_host_politeness_spaces_requests(server):
    fetcher = local_fetcher(per_host_interval=0.3)
    started = time.monotonic()
    assert all(fetcher.fetch(server + "/img.png").ok for _ in range(3))
    assert time.monotonic() - started >= 0.6


def test_project_user_agent_is_sent(server):
    seen = {}

    class UAHandler(Handler):
        def do_GET(self) -> None:
            seen["ua"] = self.headers["User-Agent"]
            self._send(200, PNG_BYTES)

    httpd = QuietServer(("127.0.0.1", 0), UAHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        assert local_fetcher().fetch(f"http://127.0.0.1:{httpd.server_port}/x").ok
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert seen["ua"].startswith("cm3-data/") and "+http" in seen["ua"]


def test_bad_urls_are_typed():
    fetcher = ImageFetcher(FetchOptions(per_host_interval=0.0))
    for url in (
        "ftp://example.org/x.png",
        "http:///x.png",
        "not a url",
        "http://[::1/x",
        "javascript:alert(1)",
    ):
        assert fetcher.fetch(url).outcome == "bad_url", url
    assert connects_to("example.org") == []
