"""The job fetching its images from a farm of loopback servers (127.0.0.2-7, each answering after a random
delay, so fetches complete in a different order every run): the shards are the same bytes at
--fetch-concurrency 1 and 64, and a job whose fetches nearly all fail exits non-zero after its report."""

import contextlib
import hashlib
import io
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from image_tokenizer.train_small_vqgan import skimage_rgb
from pipeline.cli import main
from pipeline.make_sample_corpus import TEXT
from pipeline.warc_writer import http_response, warc_record

HOSTS = [f"127.0.0.{i}" for i in range(2, 8)]
PICTURES = ("astronaut", "chelsea", "coffee", "rocket")


def jpeg(name: str, size: tuple[int, int]) -> bytes:
    stream = io.BytesIO()
    skimage_rgb(name)[0].resize(size).save(stream, "JPEG", quality=90)
    return stream.getvalue()


class FarmHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    images: dict[str, bytes] = {}
    hits: dict[str, int] = {}
    lock = threading.Lock()

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        key = f"{self.server.server_address[0]}{self.path}"
        with FarmHandler.lock:
            FarmHandler.hits[key] = FarmHandler.hits.get(key, 0) + 1
            first = FarmHandler.hits[key] == 1
        time.sleep(random.uniform(0.0, 0.05))  # completion order differs from run to run
        if self.path.startswith("/busy") and first:
            self._send(429, b"", Retry_After="1")
        elif self.path.lstrip("/") in FarmHandler.images or self.path.startswith("/busy"):
            self._send(200, FarmHandler.images[self.path.rsplit("/", 1)[1]], Content_Type="image/jpeg")
        else:
            self._send(404, b"not here")

    def _send(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def farm():
    """{host: port} of running servers; each serves every picture at /<name>-<w>.jpg."""
    FarmHandler.images = {
        f"{name}-{w}.jpg": jpeg(name, (w, w * 3 // 4)) for name in PICTURES for w in (300, 420, 640)
    }
    servers = {}
    for host in HOSTS:
        httpd = ThreadingHTTPServer((host, 0), FarmHandler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers[host] = httpd
    yield {host: httpd.server_port for host, httpd in servers.items()}
    for httpd in servers.values():
        httpd.shutdown()
        httpd.server_close()


def crawl(image_urls: list[list[str]]) -> bytes:
    """One news page per list of image URLs."""
    news = TEXT["news"]
    records = []
    for i, srcs in enumerate(image_urls):
        body = "".join(f"<p>{text}</p>" for text in news[i]["paragraphs"])
        figures = "".join(f'<figure><img alt="A photo from the story" src="{src}"></figure>' for src in srcs)
        html = f"<html><head><title>News</title></head><body><article>{body}{figures}</article></body></html>"
        url = f"https://www.paper.example/story-{i}"
        records.append(warc_record(url, http_response(html.encode(), "text/html; charset=utf-8")))
    return b"".join(records)


def farm_pages(farm: dict[str, int]) -> list[list[str]]:
    names = sorted(FarmHandler.images)
    urls = [f"http://{host}:{port}/{name}" for host, port in farm.items() for name in names[:3]]
    urls += [
        f"http://{HOSTS[0]}:{farm[HOSTS[0]]}/missing.jpg",
        f"http://{HOSTS[1]}:{farm[HOSTS[1]]}/busy/{names[5]}",
    ]
    random.Random(7).shuffle(urls)
    return [urls[i : i + 3] for i in range(0, len(urls), 3)]


def run_job(directory: Path, warc: bytes, *flags: str) -> tuple[int, str]:
    directory.mkdir()
    (directory / "crawl.warc.gz").write_bytes(warc)
    args = ["run", "--input", str(directory / "crawl.warc.gz"), "--output", str(directory / "out")]
    stderr = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        code = main([*args, "--allow-private-image-hosts", "--quiet", *flags])
    return code, stderr.getvalue()


def shard_digests(output: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((output / "data").glob("*.parquet"))
    }


@pytest.mark.slow
def test_shards_are_the_same_bytes_at_concurrency_1_and_64(farm, tmp_path):
    warc = crawl(farm_pages(farm))
    runs = {}
    for concurrency in ("1", "64"):
        code, _ = run_job(tmp_path / f"c{concurrency}", warc, "--fetch-concurrency", concurrency)
        assert code == 0
        runs[concurrency] = tmp_path / f"c{concurrency}" / "out"
    assert shard_digests(runs["1"]) and shard_digests(runs["1"]) == shard_digests(runs["64"])
    manifests = [json.loads((out / "_meta" / "manifest.json").read_text()) for out in runs.values()]
    for manifest in manifests:
        assert manifest["options"].pop("inputs")[0].endswith("crawl.warc.gz")  # in c1/ and c64/
        assert "fetch_concurrency" not in manifest["options"]
    assert manifests[0] == manifests[1]  # options, counts and sha256s
    report = json.loads((runs["64"] / "_meta" / "report.json").read_text())
    fetch = report["images"]["fetch"]
    assert fetch == {"ok": 3 * len(HOSTS) + 1, "bad_status": 1}  # the 429 was retried after its Retry-After
    assert report["images"]["codes_written"] > 0


def test_a_job_whose_fetches_fail_exits_non_zero_after_its_report(tmp_path):
    # discard port on 24 loopback hosts: nothing listens, every connect (and its retries) is refused at once
    pages = [[f"http://127.0.1.{3 * i + j + 1}:9/photo.jpg" for j in range(3)] for i in range(8)]
    code, stderr = run_job(tmp_path / "dead", crawl(pages), "--fetch-timeout", "5")
    assert code == 4
    assert (
        "24 of 24 image fetches failed" in stderr and "connection_error" in stderr and "--no-fetch" in stderr
    )
    report = json.loads((tmp_path / "dead" / "out" / "_meta" / "report.json").read_text())
    assert report["images"]["fetch"] == {"connection_error": 24}
