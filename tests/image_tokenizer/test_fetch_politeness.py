"""The fetcher under concurrent use, against real HTTP servers on loopback: the per-host cap on fetches in
flight, Retry-After holding back the host's other fetches, retried connections, the DNS cache, the proxy."""

from __future__ import annotations

import io
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from image_tokenizer import FetchOptions, ImageFetcher
from image_tokenizer.fetch import DnsCache

PNG = io.BytesIO()
Image.new("RGB", (8, 8), (10, 200, 10)).save(PNG, "PNG")
PNG_BYTES = PNG.getvalue()


class Handler(BaseHTTPRequestHandler):
    """Records per host: requests in flight (and the most at once), arrival times, hits per path."""

    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    in_flight: dict[str, int] = {}
    most: dict[str, int] = {}
    arrivals: dict[str, list[float]] = {}
    hits: dict[str, int] = {}
    paths: list[str] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        host = self.server.server_address[0]
        with Handler.lock:
            Handler.in_flight[host] = Handler.in_flight.get(host, 0) + 1
            Handler.most[host] = max(Handler.most.get(host, 0), Handler.in_flight[host])
            Handler.arrivals.setdefault(self.path, []).append(time.monotonic())
            Handler.hits[self.path] = hits = Handler.hits.get(self.path, 0) + 1
            Handler.paths.append(self.path)
        try:
            if self.path.startswith("/slow"):
                time.sleep(0.2)
            if self.path == "/busy" and hits == 1:
                self._send(429, b"", Retry_After="1")
            elif self.path == "/reset" and hits == 1:
                self.close_connection = True  # hang up without a response
            else:
                self._send(200, PNG_BYTES)
        finally:
            with Handler.lock:
                Handler.in_flight[host] -= 1

    def _send(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def servers():
    """Base URLs of two servers on two loopback hosts."""
    running = []
    for host in ("127.0.0.11", "127.0.0.12"):
        httpd = ThreadingHTTPServer((host, 0), Handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        running.append(httpd)
    yield [f"http://{h.server_address[0]}:{h.server_port}" for h in running]
    for httpd in running:
        httpd.shutdown()
        httpd.server_close()


def local_fetcher(**overrides) -> ImageFetcher:
    options = {"allowed_networks": ("127.0.0.0/8",), "per_host_interval": 0.0, "backoff_seconds": 0.05}
    return ImageFetcher(FetchOptions(**{**options, **overrides}))


def test_at_most_per_host_connections_fetches_reach_one_host_at_once(servers):
    a, b = servers
    fetcher = local_fetcher(per_host_connections=2)
    urls = [f"{a}/slow-{i}" for i in range(8)] + [f"{b}/slow-{i}" for i in range(8)]
    Handler.most.clear()
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        assert all(result.ok for result in pool.map(fetcher.fetch, urls))
    assert Handler.most == {"127.0.0.11": 2, "127.0.0.12": 2}
    assert time.monotonic() - started >= 4 * 0.2  # 8 per host, 2 at a time


def test_retry_after_holds_back_the_hosts_other_fetches(servers):
    a, _ = servers
    fetcher = local_fetcher()
    Handler.arrivals.pop("/busy", None)
    Handler.arrivals.pop("/after-busy", None)
    Handler.hits.pop("/busy", None)
    with ThreadPoolExecutor(2) as pool:
        busy = pool.submit(fetcher.fetch, f"{a}/busy")
        while not Handler.arrivals.get("/busy"):
            time.sleep(0.01)
        time.sleep(0.1)  # the 429 has been read
        other = pool.submit(fetcher.fetch, f"{a}/after-busy")
        assert busy.result().ok and other.result().ok
    told = Handler.arrivals["/busy"][0]
    assert Handler.arrivals["/busy"][1] - told >= 0.95  # the retry waited the Retry-After
    assert Handler.arrivals["/after-busy"][0] - told >= 0.95  # and so did the host's next fetch


def test_a_connection_hung_up_on_is_retried(servers):
    a, _ = servers
    Handler.hits.pop("/reset", None)
    result = local_fetcher(retries=1).fetch(f"{a}/reset")
    assert result.ok and Handler.hits["/reset"] == 2


def test_a_refused_connection_is_retried_and_then_counted():
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    started = time.monotonic()
    result = local_fetcher(retries=2, backoff_seconds=0.2).fetch(f"http://127.0.0.1:{port}/x.png")
    assert result.outcome == "connection_error"
    assert time.monotonic() - started >= 0.2 + 0.4  # two backoffs


def test_a_name_that_does_not_resolve_is_not_retried():
    started = time.monotonic()
    result = local_fetcher(retries=2, backoff_seconds=1.0).fetch("http://no-such-host.invalid/x.png")
    assert result.outcome == "connection_error" and time.monotonic() - started < 1.0


def test_dns_answers_are_reused_for_their_ttl(monkeypatch):
    calls = []

    def getaddrinfo(host, port, *args, **kwargs):
        calls.append(host)
        if host == "gone.example":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    cache = DnsCache(ttl=300)
    assert cache.resolve("img.example", 80) == cache.resolve("img.example", 80) == ["192.0.2.7"]
    for _ in range(2):
        with pytest.raises(socket.gaierror):
            cache.resolve("gone.example", 80)
    assert calls == ["img.example", "gone.example"]
    uncached = DnsCache(ttl=0, negative_ttl=0)
    uncached.resolve("img.example", 80)
    uncached.resolve("img.example", 80)
    assert calls.count("img.example") == 3


def test_cached_answers_are_still_checked(servers):
    a, _ = servers
    fetcher = local_fetcher()
    assert fetcher.fetch(f"{a}/img.png").ok
    strict = ImageFetcher(FetchOptions(per_host_interval=0.0))
    strict._dns = fetcher._dns  # the same answers, a policy that refuses them
    assert strict.fetch(f"{a}/img.png").outcome == "refused_host"


def test_a_proxy_is_used_only_when_asked_and_names_resolving_to_private_addresses_are_refused(
    servers, monkeypatch
):
    a, _ = servers
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # ignored: nothing listens there anyway
    assert local_fetcher().fetch(f"{a}/direct.png").ok
    proxied = ImageFetcher(FetchOptions(per_host_interval=0.0, proxy=a))
    Handler.paths.clear()
    # the proxy (our server, which answers absolute-form requests) fetches a name only it could resolve
    assert proxied.fetch("http://images.invalid/via-proxy.png").ok
    assert Handler.paths == ["http://images.invalid/via-proxy.png"]
    # a name this machine resolves to loopback is refused before the proxy is asked
    assert proxied.fetch("http://localhost/secret.png").outcome == "refused_host"
    assert Handler.paths == ["http://images.invalid/via-proxy.png"]
