"""Fetching images from the open web as untrusted input.

Every problem is a typed, counted `FetchResult` outcome, never an exception. Addresses are checked on
the IP actually connected to (after DNS, on every redirect hop), so neither a DNS answer nor a redirect
can point the fetcher at loopback, private, link-local or cloud-metadata services.
"""

from __future__ import annotations

import base64
import binascii
import collections
import email.utils
import enum
import http.client
import io
import ipaddress
import math
import socket
import threading
import time
import urllib.robotparser
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError
from urllib3.util import connection as urllib3_connection

USER_AGENT_TOKEN = "cm3-data"
DEFAULT_USER_AGENT = f"{USER_AGENT_TOKEN}/0.1 (+https://github.com/cm3-data/cm3-data#image-fetching)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
OPT_OUT_DIRECTIVES = frozenset({"noai", "noimageai"})
# Octet-stream and a missing type are common for images on the web; the decoder sniffs the bytes.
SNIFFED_CONTENT_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
# Not image/*: vector markup, refused like every other non-raster type.
REFUSED_IMAGE_TYPES = frozenset({"image/svg+xml"})
CHUNK_BYTES = 64 * 1024
ROBOTS_CACHE_SIZE = 1024
HOST_SLOTS_KEPT = 10_000
ROBOTS_MAX_BYTES = 512 * 1024
DNS_CACHE_SIZE = 10_000
# Well-known metadata endpoints; all are non-global anyway, listed so the intent is explicit.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
# Refused whatever they embed: deprecated IPv4-compatible (::/96, RFC 4291) and site-local (fec0::/10,
# RFC 3879) addresses, and local-use NAT64 (RFC 8215), whose IPv4 sits where the local operator chose.
REFUSED_IPV6_NETWORKS = tuple(ipaddress.IPv6Network(n) for n in ("::/96", "fec0::/10", "64:ff9b:1::/48"))
# ISATAP interface identifier 0000:5efe:a.b.c.d, ignoring its universal/local and group bits.
ISATAP_MASK = 0xFCFFFFFF
ISATAP_MARK = 0x00005EFE


class FetchOutcome(str, enum.Enum):
    OK = "ok"
    BAD_URL = "bad_url"
    REFUSED_HOST = "refused_host"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    BAD_STATUS = "bad_status"
    NOT_IMAGE = "not_image"
    TOO_LARGE = "too_large"
    ROBOTS_OPTOUT = "robots_optout"
    ROBOTS_DISALLOWED = "robots_disallowed"


@dataclass(frozen=True)
class FetchOptions:
    """Budgets and policies of one fetcher. Defaults are for crawling strangers' servers."""

    connect_timeout: float = 5.0
    read_timeout: float = 10.0  # longest silence between two reads
    total_timeout: float = 30.0  # whole fetch incl. redirects and retries: defeats slow-drip servers
    max_bytes: int = 16 * 1024 * 1024
    max_redirects: int = 3
    retries: int = 2  # extra attempts after a 429/5xx
    backoff_seconds: float = 1.0  # doubled per attempt, unless Retry-After says otherwise
    max_retry_after: float = 10.0  # a longer Retry-After gives up instead of waiting
    per_host_interval: float = 1.0  # minimum seconds between request starts to one host
    per_host_connections: int = 4  # fetches in flight at once to one host (by the URL's host)
    dns_ttl: float = 300.0  # seconds a resolved name is reused (each use is still checked); 0 = no cache
    proxy: str | None = None  # http(s)://host:port; the address guard then sees only this machine's DNS
    user_agent: str = DEFAULT_USER_AGENT
    honour_x_robots_tag: bool = True
    check_robots_txt: bool = False
    allow_private_hosts: bool = False  # loopback/private/link-local/reserved; only for local tests
    allowed_networks: tuple[str, ...] = ()  # CIDRs exempt from the refusal, e.g. an internal image mirror


@dataclass(frozen=True)
class FetchResult:
    url: str
    ok: bool
    data: bytes | None
    outcome: str
    detail: str = ""
    content_type: str | None = None


class _Failure(Exception):
    """Internal: ends a fetch with a typed outcome."""

    def __init__(self, outcome: FetchOutcome, detail: str, retryable: bool = False):
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail
        self.retryable = retryable


def _root_cause(error: BaseException) -> BaseException:
    """The innermost of an exception's causes and contexts (requests wraps urllib3 wraps socket errors)."""
    seen = set()
    while id(error) not in seen:
        seen.add(id(error))
        inner = error.__cause__ or error.__context__
        if inner is None and error.args and isinstance(error.args[0], BaseException):
            inner = error.args[0]  # requests passes urllib3's MaxRetryError as an argument
        if inner is None:
            break
        inner = getattr(inner, "reason", None) or inner  # MaxRetryError.reason: the connection error
        error = inner
    return error


class RefusedAddressError(Exception):
    """Raised at connect time for a disallowed IP. Deliberately not an OSError, so urllib3 does not
    wrap or retry it."""


def embedded_ipv4s(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries, which a tunnel, translator or dual-stack socket may reach.

    IPv4-mapped (::ffff:0:0/96) and -translated (::ffff:0:0:0/96), the NAT64 well-known prefix (64:ff9b::/96,
    RFC 6052), 6to4 (2002::/16, RFC 3056), Teredo's server and client (2001::/32, RFC 4380) and ISATAP
    interface identifiers (RFC 5214, in any prefix).
    """
    value = int(ip)
    low32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if value >> 32 in (0xFFFF, 0xFFFF << 16) or value >> 32 == 0x64FF9B << 64:
        return (low32,)
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip.teredo is not None:
        return ip.teredo
    if (value >> 32) & ISATAP_MASK == ISATAP_MARK:
        return (low32,)
    return ()


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable unicast, not a cloud metadata endpoint, and every IPv4 it embeds is so too.

    The one rule the fetcher applies to every address it would connect to (after DNS, on every redirect).
    `is_global` alone is not enough: it passes IPv6 forms that tunnel or translate to loopback or private
    IPv4, and the deprecated ranges of REFUSED_IPV6_NETWORKS.
    """
    if ip.is_multicast or not ip.is_global or ip in METADATA_ADDRESSES:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return True
    if any(ip in network for network in REFUSED_IPV6_NETWORKS):
        return False
    return all(is_public_address(v4) for v4 in embedded_ipv4s(ip))


def address_policy(options: FetchOptions) -> Callable[[str], bool]:
    """IP string -> may we connect to it, under `options`."""
    networks = tuple(ipaddress.ip_network(n) for n in options.allowed_networks)

    def allowed(address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%")[0])
        return options.allow_private_hosts or is_public_address(ip) or any(ip in n for n in networks)

    return allowed


class DnsCache:
    """getaddrinfo answers reused for `ttl` seconds (failures for `negative_ttl`), at most DNS_CACHE_SIZE names.

    The system resolver is the slow part of many small fetches; the address policy is still applied to every
    cached answer on every connect, so caching can only narrow what is reached, never widen it.
    """

    def __init__(self, ttl: float, negative_ttl: float = 30.0):
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._lock = threading.Lock()
        self._answers: collections.OrderedDict[tuple[str, int], tuple[float, object]] = (
            collections.OrderedDict()
        )

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of `host` (socket.gaierror if it does not resolve)."""
        key = (host, port)
        now = time.monotonic()
        with self._lock:
            cached = self._answers.get(key)
        if cached is not None and cached[0] > now:
            if isinstance(cached[1], socket.gaierror):
                raise cached[1]
            return list(cached[1])
        try:
            answer: object = _system_resolve(host, port)
            expires = now + self.ttl
        except socket.gaierror as error:
            answer, expires = error, now + self.negative_ttl
        if self.ttl > 0:
            with self._lock:
                self._answers[key] = (expires, answer)
                self._answers.move_to_end(key)
                while len(self._answers) > DNS_CACHE_SIZE:
                    self._answers.popitem(last=False)
        if isinstance(answer, socket.gaierror):
            raise answer
        return list(answer)


def _system_resolve(host: str, port: int) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


class _DeadlineReader(io.RawIOBase):
    """A response's socket reads, each waiting at most the read timeout and never past the fetch's deadline.

    A per-read timeout alone lets a server that drips its status line, headers or body a byte at a time
    hold a fetch for as long as it likes.
    """

    def __init__(self, sock: socket.socket, deadline: float):
        super().__init__()
        self._sock = sock
        self._read_timeout = sock.gettimeout()  # what urllib3 set for this response
        self._deadline = deadline
        self._raw = sock.makefile("rb", buffering=0)  # keeps the socket open while the body is read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int | None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out: total time budget spent")
        self._sock.settimeout(remaining if self._read_timeout is None else min(self._read_timeout, remaining))
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """What http.client.HTTPResponse reads a response through (it only calls `makefile`)."""

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


def _guarded_connection_class(
    base: type[HTTPConnection],
    allowed: Callable[[str], bool],
    deadline: Callable[[], float],
    resolve: Callable[[str, int], list[str]] = _system_resolve,
) -> type[HTTPConnection]:
    class GuardedConnection(base):  # type: ignore[misc,valid-type]
        """Resolves once, validates each IP, connects to that IP; Host header and TLS SNI keep the name.

        Responses are read under the fetch's `deadline()`, from the status line to the last body byte.
        """

        def response_class(self, sock: socket.socket, *args, **kwargs) -> http.client.HTTPResponse:
            """http.client builds each response through this attribute."""
            return http.client.HTTPResponse(_DeadlineSocket(sock, deadline()), *args, **kwargs)

        def _new_conn(self) -> socket.socket:
            try:
                addresses = resolve(self._dns_host, self.port)
            except socket.gaierror as error:
                raise NameResolutionError(self.host, self, error) from error
            permitted = [a for a in addresses if allowed(a)]
            if not permitted:
                raise RefusedAddressError(
                    f"{self.host} resolves to non-public {', '.join(sorted(set(addresses)))}"
                )
            last_error: OSError | None = None
            for address in permitted:
                try:
                    sock = urllib3_connection.create_connection(
                        (address, self.port),
                        self.timeout,
                        source_address=self.source_address,
                        socket_options=self.socket_options,
                    )
                except TimeoutError as error:
                    raise ConnectTimeoutError(self, f"connect to {self.host} timed out") from error
                except OSError as error:
                    last_error = error
                    continue
                left = deadline() - time.monotonic()
                if left <= 0:
                    sock.close()
                    raise ConnectTimeoutError(self, f"connect to {self.host} spent the time budget")
                # What is left, not the connect timeout again, bounds the TLS handshake that follows.
                sock.settimeout(left if self.timeout is None else min(self.timeout, left))
                return sock
            raise NewConnectionError(self, f"failed to connect: {last_error}")

    return GuardedConnection


class GuardedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections refuse IPs that `allowed` rejects and read no response past
    `deadline` (a `time.monotonic()` value the fetcher sets before each request; one adapter per thread)."""

    def __init__(
        self, allowed: Callable[[str], bool], resolve: Callable[[str, int], list[str]] = _system_resolve
    ):
        self.allowed = allowed
        self.resolve = resolve
        self.deadline = math.inf
        super().__init__(max_retries=0, pool_maxsize=4)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        http_conn = _guarded_connection_class(
            HTTPConnection, self.allowed, lambda: self.deadline, self.resolve
        )
        https_conn = _guarded_connection_class(
            HTTPSConnection, self.allowed, lambda: self.deadline, self.resolve
        )
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }


def x_robots_opt_out(header_values: str, agent_token: str = USER_AGENT_TOKEN) -> bool:
    """True when X-Robots-Tag says noai/noimageai for everyone or for our agent token."""
    agent: str | None = None
    for part in header_values.split(","):
        part = part.strip().lower()
        if ":" in part:  # "otherbot: noai" scopes this and following directives to one crawler
            agent, _, part = (p.strip() for p in part.partition(":"))
        if part in OPT_OUT_DIRECTIVES and agent in (None, "*", agent_token.lower()):
            return True
    return False


def decode_data_uri(uri: str, max_bytes: int) -> tuple[str, bytes]:
    """`data:[<type>][;base64],<payload>` -> (media type, bytes), with the byte cap checked before decoding."""
    header, comma, payload = uri[5:].partition(",")
    if not comma:
        raise _Failure(FetchOutcome.BAD_URL, "data: URI without a comma")
    params = [p.strip().lower() for p in header.split(";")]
    media_type = params[0] or "text/plain"
    is_base64 = "base64" in params[1:]
    if (len(payload) * 3 // 4 if is_base64 else len(payload) // 3) > max_bytes:
        raise _Failure(FetchOutcome.TOO_LARGE, f"data: URI of {len(payload)} characters")
    try:
        data = (
            base64.b64decode("".join(payload.split()), validate=True)
            if is_base64
            else unquote_to_bytes(payload)
        )
    except (binascii.Error, ValueError) as error:
        raise _Failure(FetchOutcome.BAD_URL, f"invalid base64: {error}") from None
    if len(data) > max_bytes:
        raise _Failure(FetchOutcome.TOO_LARGE, f"{len(data)} bytes")
    return media_type, data


def _check_content_type(content_type: str) -> None:
    media_type = content_type.split(";")[0].strip().lower()
    if media_type in REFUSED_IMAGE_TYPES or not (
        media_type.startswith("image/") or media_type in SNIFFED_CONTENT_TYPES
    ):
        raise _Failure(FetchOutcome.NOT_IMAGE, f"content type {media_type!r}")


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ImageFetcher:
    """Thread-safe image fetcher: `fetch(url)` never raises for network or content problems.

    `stats` counts outcomes (a `collections.Counter` keyed by outcome value) for the run's funnel report.
    """

    def __init__(self, options: FetchOptions = FetchOptions()):
        self.options = options
        self.stats: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._next_slot: dict[str, float] = {}
        self._robots: collections.OrderedDict[str, urllib.robotparser.RobotFileParser] = (
            collections.OrderedDict()
        )
        self._local = threading.local()  # requests.Session is not documented as thread-safe
        self._allowed = address_policy(options)
        self._dns = DnsCache(options.dns_ttl)
        self._hosts = threading.Condition()
        self._in_flight: collections.Counter[str] = collections.Counter()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxies/netrc from the environment: we check the real peer
            if self.options.proxy:  # only when asked (--fetch-proxy): the guard then checks names, not peers
                session.proxies = {"http": self.options.proxy, "https": self.options.proxy}
            adapter = GuardedAdapter(self._allowed, self._dns.resolve)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.adapter = adapter
            # identity: images are compressed already, and a gzip body could inflate past the byte cap per read
            session.headers.update(
                {"User-Agent": self.options.user_agent, "Accept": "image/*", "Accept-Encoding": "identity"}
            )
            self._local.session = session
        return session

    def fetch(self, url: str) -> FetchResult:
        try:
            if url.startswith("data:"):
                media_type, data = decode_data_uri(url, self.options.max_bytes)
                _check_content_type(media_type)
                result = FetchResult(url, True, data, FetchOutcome.OK.value, "", media_type)
            else:
                result = self._fetch_http(url)
        except _Failure as failure:
            result = FetchResult(url, False, None, failure.outcome.value, failure.detail)
        with self._lock:
            self.stats[result.outcome] += 1
        return result

    def _fetch_http(self, url: str) -> FetchResult:
        deadline = time.monotonic() + self.options.total_timeout
        _check_http_url(url)
        host = urlsplit(url).netloc.lower()
        self._enter_host(host, deadline)
        try:
            return self._follow(url, deadline)
        finally:
            self._leave_host(host)

    def _enter_host(self, host: str, deadline: float) -> None:
        """Per-host politeness: wait for one of the host's `per_host_connections` fetch slots."""
        with self._hosts:
            while self._in_flight[host] >= self.options.per_host_connections:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _Failure(FetchOutcome.TIMEOUT, f"waited the whole time budget for a slot on {host}")
                self._hosts.wait(left)
            self._in_flight[host] += 1

    def _leave_host(self, host: str) -> None:
        with self._hosts:
            self._in_flight[host] -= 1
            if not self._in_flight[host]:
                del self._in_flight[host]
            self._hosts.notify_all()

    def _follow(self, url: str, deadline: float) -> FetchResult:
        """Up to max_redirects hops, each re-checked: URL, robots.txt, and the address on connect."""
        current = url
        for _hop in range(self.options.max_redirects + 1):
            _check_http_url(current)
            if self.options.check_robots_txt and not self._robots_allows(current, deadline):
                raise _Failure(FetchOutcome.ROBOTS_DISALLOWED, f"robots.txt disallows {current}")
            response = self._get_with_retries(current, deadline)
            with response:
                if self.options.honour_x_robots_tag and x_robots_opt_out(
                    response.headers.get("X-Robots-Tag", "")
                ):
                    raise _Failure(
                        FetchOutcome.ROBOTS_OPTOUT, f"X-Robots-Tag: {response.headers['X-Robots-Tag']}"
                    )
                if response.is_redirect:
                    current = urljoin(current, response.headers["Location"])
                    continue
                if response.status_code not in (200, 203):
                    raise _Failure(FetchOutcome.BAD_STATUS, f"HTTP {response.status_code}")
                content_type = response.headers.get("Content-Type", "")
                _check_content_type(content_type)
                data = self._read_capped(response, self.options.max_bytes)
                return FetchResult(url, True, data, FetchOutcome.OK.value, "", content_type or None)
        raise _Failure(FetchOutcome.TOO_MANY_REDIRECTS, f"more than {self.options.max_redirects} redirects")

    def _get_with_retries(self, url: str, deadline: float) -> requests.Response:
        """GET with retries: 429/5xx (after Retry-After, else exponential backoff) and failed connections
        (backoff). Every attempt goes through `_get`, so each connection is checked again."""
        host = urlsplit(url).netloc.lower()
        for attempt in range(self.options.retries + 1):
            last = attempt == self.options.retries
            try:
                response = self._get(url, deadline)
            except _Failure as failure:
                if last or not failure.retryable:
                    raise
                self._back_off(self.options.backoff_seconds * 2**attempt, deadline, failure)
                continue
            if response.status_code not in RETRY_STATUSES or last:
                return response
            wait = _retry_after_seconds(response.headers.get("Retry-After"))
            response.close()
            failure = _Failure(FetchOutcome.BAD_STATUS, f"HTTP {response.status_code}")
            if wait is not None and wait <= self.options.max_retry_after:
                self._defer_host(host, wait)  # the host asked: its other fetches wait too
            self._back_off(
                self.options.backoff_seconds * 2**attempt if wait is None else wait, deadline, failure
            )
        raise AssertionError("unreachable")

    def _back_off(self, wait: float, deadline: float, failure: _Failure) -> None:
        if wait > self.options.max_retry_after or time.monotonic() + wait > deadline:
            raise _Failure(failure.outcome, f"{failure.detail}, retry after {wait:.0f}s")
        time.sleep(wait)

    def _defer_host(self, host: str, wait: float) -> None:
        with self._lock:
            self._next_slot[host] = max(self._next_slot.get(host, 0.0), time.monotonic() + wait)

    def _get(self, url: str, deadline: float) -> requests.Response:
        self._wait_for_host(urlsplit(url).netloc.lower(), deadline)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Failure(FetchOutcome.TIMEOUT, "total time budget spent")
        timeout = (min(self.options.connect_timeout, remaining), min(self.options.read_timeout, remaining))
        session = self._session()
        self._local.adapter.deadline = deadline
        if self.options.proxy:
            self._check_name_behind_proxy(url)
        try:
            return session.get(url, stream=True, allow_redirects=False, timeout=timeout)
        except RefusedAddressError as error:
            raise _Failure(FetchOutcome.REFUSED_HOST, str(error)) from None
        except requests.Timeout as error:
            raise _Failure(FetchOutcome.TIMEOUT, str(error)) from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, UnicodeError) as error:
            raise _Failure(FetchOutcome.BAD_URL, str(error)) from None
        except requests.RequestException as error:
            # a name that does not resolve will not resolve a second later: not retried
            unresolved = isinstance(_root_cause(error), (NameResolutionError, socket.gaierror))
            raise _Failure(FetchOutcome.CONNECTION_ERROR, str(error), retryable=not unresolved) from None

    def _check_name_behind_proxy(self, url: str) -> None:
        """Behind a proxy the peer is the proxy: the URL's host is resolved here and checked instead. The
        proxy resolves it again itself, so this is weaker than the peer check (see pipeline/README.md)."""
        parts = urlsplit(url)
        try:
            addresses = self._dns.resolve(parts.hostname or "", parts.port or 80)
        except socket.gaierror:
            return  # only the proxy can resolve it: passed on unchecked
        refused = sorted({a for a in addresses if not self._allowed(a)})
        if refused:
            raise _Failure(
                FetchOutcome.REFUSED_HOST, f"{parts.hostname} resolves to non-public {', '.join(refused)}"
            )

    def _read_capped(self, response: requests.Response, max_bytes: int) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise _Failure(FetchOutcome.TOO_LARGE, f"Content-Length {declared}")
        body = bytearray()
        try:
            while True:
                # read1 returns whatever arrived; the socket reads under it stop at the deadline
                chunk = response.raw.read1(CHUNK_BYTES, decode_content=True)
                if not chunk:
                    return bytes(body)
                body += chunk
                if len(body) > max_bytes:
                    raise _Failure(FetchOutcome.TOO_LARGE, f"more than {max_bytes} bytes")
        except _Failure:
            raise
        except Urllib3TimeoutError as error:  # a read cut short by the deadline
            raise _Failure(FetchOutcome.TIMEOUT, f"{type(error).__name__}: {error}") from None
        except (requests.RequestException, OSError) as error:
            outcome = FetchOutcome.TIMEOUT if "timed out" in str(error) else FetchOutcome.CONNECTION_ERROR
            raise _Failure(outcome, f"{type(error).__name__}: {error}") from None
        except Exception as error:  # urllib3 protocol/decoding errors have no common base with OSError
            raise _Failure(FetchOutcome.CONNECTION_ERROR, f"{type(error).__name__}: {error}") from None

    def _wait_for_host(self, host: str, deadline: float) -> None:
        """Per-host politeness: reserve the next start slot for `host`, then sleep until it."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot.get(host, now))
            self._next_slot[host] = slot + self.options.per_host_interval
            if len(self._next_slot) > HOST_SLOTS_KEPT:  # forget hosts whose slot has passed
                self._next_slot = {h: t for h, t in self._next_slot.items() if t > now}
        if slot > deadline:
            raise _Failure(FetchOutcome.TIMEOUT, f"politeness wait for {host} exceeds the time budget")
        if slot > now:
            time.sleep(slot - now)

    def _robots_allows(self, url: str, deadline: float) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc.lower()}"
        with self._lock:
            parser = self._robots.get(origin)
            if parser is not None:
                self._robots.move_to_end(origin)
        if parser is None:
            parser = self._load_robots(origin, deadline)
            with self._lock:
                self._robots[origin] = parser
                while len(self._robots) > ROBOTS_CACHE_SIZE:
                    self._robots.popitem(last=False)
        return parser.can_fetch(USER_AGENT_TOKEN, url)

    def _load_robots(self, origin: str, deadline: float) -> urllib.robotparser.RobotFileParser:
        """RFC 9309: 4xx means no rules; 5xx or unreachable means disallow all for now."""
        parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
        try:
            response = self._get(origin + "/robots.txt", deadline)
            with response:
                if 400 <= response.status_code < 500:
                    parser.allow_all = True
                elif response.status_code == 200:
                    text = self._read_capped(response, ROBOTS_MAX_BYTES).decode("utf-8", "replace")
                    parser.parse(text.splitlines())
                else:
                    parser.disallow_all = True
        except _Failure:
            parser.disallow_all = True
        return parser


def _check_http_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise _Failure(FetchOutcome.BAD_URL, str(error)) from None
    if parts.scheme not in ("http", "https"):
        raise _Failure(FetchOutcome.BAD_URL, f"scheme {parts.scheme!r} is not http(s)")
    if not parts.hostname:
        raise _Failure(FetchOutcome.BAD_URL, "no host")
    if port == 0:
        raise _Failure(FetchOutcome.BAD_URL, "port 0")
