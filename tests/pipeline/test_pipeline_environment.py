"""The manifest's `environment` (project version, sha256 of the shipped lock, versions of the packages that
decide output bytes), and that manifests written before it existed still verify and replay."""

import contextlib
import hashlib
import io
import json
from importlib import metadata, resources

import apache_beam as beam
import numpy
import PIL
import pyarrow

from pipeline import environment as env_module
from pipeline.cli import main
from pipeline.environment import OUTPUT_PACKAGES, environment, lock_sha256
from pipeline.shards import verify

PAGE = "<html><body><p>One sentence here for the reader. Two more sentences follow it. And a third one.</p>"


def test_environment_names_the_project_version_lock_and_output_packages():
    env = environment()
    assert env["package_version"] == metadata.version("cm3-data")
    assert set(env["packages"]) == set(OUTPUT_PACKAGES) >= {"apache-beam", "lxml", "pyarrow", "torch"}
    assert env["packages"]["apache-beam"] == beam.__version__
    assert env["packages"]["numpy"] == numpy.__version__
    assert env["packages"]["pyarrow"] == pyarrow.__version__
    assert env["packages"]["pillow"] == PIL.__version__
    lock = resources.files("dataflow").joinpath("constraints.txt")
    assert env["lock_sha256"] == (hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else None)
    json.dumps(env)  # goes into manifest.json as it is


def test_lock_sha256_is_null_where_the_build_has_no_lock(monkeypatch):
    monkeypatch.setattr(env_module, "LOCK", ("dataflow", "no-such-lock.txt"))
    assert lock_sha256() is None
    monkeypatch.setattr(env_module, "LOCK", ("no_such_package", "constraints.txt"))
    assert lock_sha256() is None
    monkeypatch.setattr(env_module, "LOCK", ("c4_filters", "data/ldnoobw_en.txt"))  # package data is read
    data = resources.files("c4_filters").joinpath("data/ldnoobw_en.txt").read_bytes()
    assert lock_sha256() == hashlib.sha256(data).hexdigest()
    assert environment()["packages"]["apache-beam"] == beam.__version__
    monkeypatch.setattr(env_module, "OUTPUT_PACKAGES", ("no-such-distribution",))
    assert environment()["packages"] == {"no-such-distribution": None}


def test_a_manifest_without_environment_still_verifies_and_replays(write_document_shards, tmp_path):
    rows = [{"url": f"https://a.example/{i}", "html": PAGE, "lang_score": 0.99} for i in range(4)]
    old = write_document_shards(tmp_path / "old", {"train": rows[:3], "validation": rows[3:]}, n_embed=1024)
    assert "environment" not in json.loads((old / "_meta" / "manifest.json").read_text())
    assert verify(str(old)) == []
    (tmp_path / "urls.txt").write_text("https://a.example/0\n")
    new = tmp_path / "new"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["verify", str(old)]) == 0
        assert main(["optout", str(old), "--urls", str(tmp_path / "urls.txt"), "--out", str(new)]) == 0
    manifest = json.loads((new / "_meta" / "manifest.json").read_text())
    assert "environment" not in manifest  # the first run's is not made up
    assert manifest["optout"]["environment"] == environment()  # the replay's, which wrote the new shards
    assert verify(str(new)) == []
