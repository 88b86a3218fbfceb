"""One version number, pyproject's: every CLI's `--version` prints it from the installed metadata."""

import re
from importlib import metadata
from pathlib import Path

import pytest

from image_tokenizer.version import package_version, version_line
from model.cli import main as train_main
from model.generate_cli import main as generate_main
from pipeline.cli import main as data_main

REPO = Path(__file__).resolve().parents[1]


def test_the_version_is_pyprojects():
    declared = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert package_version() == metadata.version("cm3-data") == declared  # else: pip install -e . again


@pytest.mark.parametrize(
    "prog, main", [("cm3-data", data_main), ("cm3-train", train_main), ("cm3-generate", generate_main)]
)
def test_every_cli_prints_its_version(prog, main, capsys):
    try:
        code = main(["--version"])
    except SystemExit as exit:  # argparse's version action
        code = exit.code
    assert code == 0
    assert capsys.readouterr().out == f"{prog} {package_version()}\n" == version_line(prog) + "\n"


def test_an_uninstalled_tree_says_unknown(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert version_line("cm3-data") == "cm3-data unknown"
