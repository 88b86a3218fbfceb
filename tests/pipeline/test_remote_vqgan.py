"""--vqgan-checkpoint on a remote Beam filesystem (gs://, s3:// ...): copied once per process to a local file
that image_tokenizer.load_vqgan reads, on the launcher (describe_vqgan) and on workers (VQGANHandle / load_job_vqgan).

Beam has no public in-memory filesystem, so `cm3test://` below is a real Beam FileSystem with its own scheme
(Beam finds FileSystem subclasses by scheme), reading the test's temporary directory through Beam's I/O.
"""

import hashlib
import shutil
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.localfilesystem import LocalFileSystem

from image_tokenizer import DEFAULT_CHECKPOINT, crop
from image_tokenizer.train_small_vqgan import skimage_rgb
from pipeline.cli import main as cli_main
from pipeline.images import VQGANHandle, describe_vqgan, encode_images, load_job_vqgan, local_vqgan_files

SCHEME = "cm3test"


class BrokenStream:
    """A read stream that fails after its first small read, like a connection dropped mid-download."""

    def __init__(self, stream):
        self._stream = stream
        self._reads = 0

    def read(self, size: int = -1) -> bytes:
        self._reads += 1
        if self._reads > 1:
            raise ConnectionResetError("connection dropped mid-download")
        return self._stream.read(1000)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._stream.close()


class TestFileSystem(LocalFileSystem):
    """cm3test:///abs/path reads /abs/path. Counts the opens per path; paths in `break_next_open` get a
    stream that breaks after the first read (once)."""

    __test__ = False  # not a pytest test class
    opened: ClassVar[Counter] = Counter()
    break_next_open: ClassVar[set[str]] = set()

    @classmethod
    def scheme(cls) -> str:
        return SCHEME

    @staticmethod
    def _local(path: str) -> str:
        return path[len(SCHEME + "://") :]

    def exists(self, path: str) -> bool:
        return super().exists(self._local(path))

    def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        type(self).opened[path] += 1
        stream = super().open(self._local(path), mime_type, compression_type)
        if path in self.break_next_open:
            self.break_next_open.discard(path)
            return BrokenStream(stream)
        return stream


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def remote_checkpoint(tmp_path) -> str:
    """The bundled model as m.ckpt + m.yaml on cm3test:// (a path unique to the test: copies are cached)."""
    shutil.copy(DEFAULT_CHECKPOINT, tmp_path / "m.ckpt")
    shutil.copy(Path(DEFAULT_CHECKPOINT).with_suffix(".yaml"), tmp_path / "m.yaml")
    return f"{SCHEME}://{tmp_path}/m.ckpt"


def encode(handle: VQGANHandle, items) -> list[tuple[str, str]]:
    return list(encode_images(items, handle.model(), 1))


def test_remote_checkpoint_gives_the_codes_and_sha256_of_the_local_one(remote_checkpoint):
    images = [skimage_rgb(name)[0] for name in ("astronaut", "rocket", "coffee")]
    items = [(f"https://img.example/{i}.jpg", image) for i, image in enumerate(images)]
    items = [(url, crop(image, url)) for url, image in items]
    local = encode(VQGANHandle(DEFAULT_CHECKPOINT, device="cpu"), items)
    remote = encode(VQGANHandle(remote_checkpoint, device="cpu"), items)
    assert len(remote) == 3 and remote == local

    described = describe_vqgan(remote_checkpoint, None)
    assert described["vqgan"] == {"checkpoint": remote_checkpoint, "sha256": sha256(DEFAULT_CHECKPOINT)}
    assert described["n_embed"] == describe_vqgan(None, None)["n_embed"]
    # the launcher and the worker's loader in this process share one copy of each file
    assert TestFileSystem.opened[remote_checkpoint] == 1
    assert TestFileSystem.opened[remote_checkpoint.replace(".ckpt", ".yaml")] == 1


def test_local_paths_are_used_as_they_are(remote_checkpoint):
    assert local_vqgan_files(None, None) == (None, None)
    assert local_vqgan_files(DEFAULT_CHECKPOINT, None) == (DEFAULT_CHECKPOINT, None)
    yaml = str(Path(DEFAULT_CHECKPOINT).with_suffix(".yaml"))
    checkpoint, config = local_vqgan_files(DEFAULT_CHECKPOINT, remote_checkpoint.replace(".ckpt", ".yaml"))
    assert checkpoint == DEFAULT_CHECKPOINT and Path(config).read_bytes() == Path(yaml).read_bytes()


def test_threads_copy_each_file_once(remote_checkpoint):
    n_threads = 8
    start = threading.Barrier(n_threads)

    def copy(_):
        start.wait()
        return local_vqgan_files(remote_checkpoint, None)

    with ThreadPoolExecutor(n_threads) as pool:
        results = set(pool.map(copy, range(n_threads)))
    assert len(results) == 1
    checkpoint, config = results.pop()
    assert sha256(checkpoint) == sha256(DEFAULT_CHECKPOINT)
    assert Path(config).read_bytes() == Path(DEFAULT_CHECKPOINT).with_suffix(".yaml").read_bytes()
    assert TestFileSystem.opened[remote_checkpoint] == 1
    assert local_vqgan_files(remote_checkpoint, None) == (checkpoint, config)
    assert TestFileSystem.opened[remote_checkpoint] == 1


def test_a_broken_download_leaves_no_file_and_a_retry_copies_it(remote_checkpoint):
    TestFileSystem.break_next_open.add(remote_checkpoint)
    with pytest.raises(ConnectionResetError):
        local_vqgan_files(remote_checkpoint, None)
    checkpoint, _ = local_vqgan_files(remote_checkpoint, None)  # the retried bundle
    assert TestFileSystem.opened[remote_checkpoint] == 2
    assert sha256(checkpoint) == sha256(DEFAULT_CHECKPOINT)
    assert [path.name for path in Path(checkpoint).parent.iterdir()] == ["m.ckpt"]  # no partial left


@pytest.mark.parametrize("missing", ["m.ckpt", "m.yaml"])
def test_a_missing_remote_file_is_named_by_launcher_and_worker(remote_checkpoint, missing, tmp_path, capsys):
    (tmp_path / missing).unlink()
    missing_path = f"{SCHEME}://{tmp_path}/{missing}"
    with pytest.raises(FileNotFoundError, match=missing_path):
        load_job_vqgan(remote_checkpoint, None, "cpu", None)
    assert TestFileSystem.opened[remote_checkpoint] == 0  # nothing downloaded when the yaml is missing
    capsys.readouterr()  # what the direct call logged (an earlier command's handler may show it)

    output = tmp_path / "out"
    code = cli_main(["run", "--output", str(output), "--quiet", "--vqgan-checkpoint", remote_checkpoint])
    error = capsys.readouterr().err
    what = "VQGAN checkpoint" if missing == "m.ckpt" else "VQGAN config"
    assert code == 2
    assert error == f"cm3-data run: {what} not found: {missing_path}\n"


def test_weights_their_yaml_does_not_describe_stop_the_launch(tmp_path, capsys):
    """Any failure to load the model on the launcher (here torch's shape mismatch, a RuntimeError) is one
    line and exit 2, before a job starts."""
    config = yaml.safe_load(Path(DEFAULT_CHECKPOINT).with_suffix(".yaml").read_text())
    config["model"]["params"]["n_embed"] += 1
    (tmp_path / "wrong.yaml").write_text(yaml.safe_dump(config))
    args = [
        "run",
        "--output",
        str(tmp_path / "out"),
        "--quiet",
        "--vqgan-config",
        str(tmp_path / "wrong.yaml"),
    ]
    assert cli_main(args) == 2
    error = capsys.readouterr().err
    assert "cm3-data run: cannot load the VQGAN: RuntimeError:" in error and "Traceback" not in error


def test_a_missing_explicit_remote_config_is_named(remote_checkpoint, tmp_path):
    config = f"{SCHEME}://{tmp_path}/other.yaml"
    with pytest.raises(FileNotFoundError, match=f"VQGAN config not found: {config}"):
        describe_vqgan(remote_checkpoint, config)
    with pytest.raises(FileNotFoundError, match=f"VQGAN config not found: {config}"):
        describe_vqgan(None, config)


def test_workers_refuse_a_checkpoint_replaced_since_launch(tmp_path):
    """The manifest records the checkpoint the launcher saw; a worker finding other bytes (an object
    overwritten in the bucket mid-job) stops instead of writing codes of another model."""
    shutil.copy(DEFAULT_CHECKPOINT, tmp_path / "m.ckpt")
    shutil.copy(Path(DEFAULT_CHECKPOINT).with_suffix(".yaml"), tmp_path / "m.yaml")
    remote = f"{SCHEME}://{tmp_path}/m.ckpt"
    recorded = describe_vqgan(remote, None)["vqgan"]["sha256"]
    assert load_job_vqgan(remote, None, "cpu", recorded) is not None
    with pytest.raises(ValueError, match="changed since the job was launched"):
        load_job_vqgan(DEFAULT_CHECKPOINT, None, "cpu", "0" * 64)
