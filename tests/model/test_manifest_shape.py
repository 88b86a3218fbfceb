"""A token or document shard manifest of the wrong shape (a key missing, `null`, a string for a count, a
file name that is a path) is one ShardError line from every reader, and `cm3-train` exits 2 with it."""

import json
import shutil

import pytest

from model.cli import main
from model.shards import ShardError, TokenSplit, read_docs_manifest, read_token_manifest

TOKEN_DAMAGE = {
    "files is null": lambda m: m["splits"]["train"].update(files=None),
    "no sha256": lambda m: m["splits"]["train"].pop("sha256"),
    "docs as text": lambda m: m["splits"]["train"].update(docs="12"),
    "a path as a file name": lambda m: m["splits"]["train"]["files"].update(tokens="../../etc/passwd"),
    "no vocab": lambda m: m.pop("vocab"),
    "splits a list": lambda m: m.update(splits=[]),
    "a list, not an object": lambda m: m.clear(),
}


@pytest.fixture
def copied_tokens(token_shards, tmp_path):
    return shutil.copytree(token_shards, tmp_path / "tokens")


def _damage(path, change):
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest if manifest else [1, 2]))


@pytest.mark.parametrize("change", TOKEN_DAMAGE.values(), ids=TOKEN_DAMAGE.keys())
def test_a_token_manifest_of_the_wrong_shape_is_a_shard_error(copied_tokens, change):
    _damage(copied_tokens / "manifest.json", change)
    with pytest.raises(ShardError, match="manifest.json: ") as error:
        TokenSplit.open(copied_tokens, "train")
    assert "\n" not in str(error.value)


def test_cm3_train_on_a_damaged_token_manifest_exits_2_in_one_line(copied_tokens, tmp_path, capsys):
    _damage(copied_tokens / "manifest.json", TOKEN_DAMAGE["files is null"])
    argv = ["train", "--data", str(copied_tokens), f"out={tmp_path / 'run'}", "preset=tiny", "max_steps=1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "splits.train.files is not an object" in err and "Traceback" not in err


def test_a_document_manifest_of_the_wrong_shape_is_a_shard_error(doc_shards, tmp_path):
    copied = shutil.copytree(doc_shards, tmp_path / "docs")
    read_docs_manifest(copied)
    path = copied / "_meta" / "manifest.json"
    intact = path.read_text()
    _damage(path, lambda m: m["splits"]["train"]["shards"][0].pop("file"))
    with pytest.raises(ShardError, match=r"splits.train.shards\[0\].file is missing"):
        read_docs_manifest(copied)
    path.write_text(intact)
    _damage(path, lambda m: m.update(image_codes=None))
    with pytest.raises(ShardError, match="image_codes is not an object"):
        read_docs_manifest(copied)


def test_an_intact_manifest_reads(token_shards):
    assert read_token_manifest(token_shards)["splits"]["train"]["docs"] > 0
