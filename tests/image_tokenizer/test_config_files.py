"""Every YAML/JSON config file (`--options-file`, `cm3-train --config` and its overrides, a taming yaml) is
read under one rule: a hostile file is one line in bounded memory and time, never a silent surprise."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image_tokenizer.config_files import MAX_CONFIG_BYTES, ConfigFileError, parse_config, read_config_file


def test_a_plain_config_reads_as_yaml_and_json():
    assert parse_config("c4:\n  min_sentences: 5\n", "f") == {"c4": {"min_sentences": 5}}
    assert parse_config('{"limits": {"max_tags": [1, 2]}}', "f") == {"limits": {"max_tags": [1, 2]}}


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: &x [1, 2]\nb: *x\n", "anchors and aliases"),
        ("a: &x 1\n", "anchors and aliases"),
        ("c4:\n  min_sentences: 5\n  min_sentences: 6\n", "key 'min_sentences' is given twice"),
        ("[" * 10_000 + "]" * 10_000, "nested deeper than"),
        ("x: " + "9" * 10_000 + "\n", "not valid yaml"),
        ("x: !!python/object/apply:os.system [ls]\n", "could not determine a constructor"),
        ("c4: [1, 2\n", "not valid yaml at line 2"),
    ],
)
def test_a_hostile_config_is_one_line_naming_the_place(text, message):
    with pytest.raises(ConfigFileError) as error:
        parse_config(text, "--options-file f")
    assert message in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).startswith("--options-file f: ")


def test_a_duplicate_key_names_its_line():
    with pytest.raises(ConfigFileError, match="at line 3, column 3: key 'a' is given twice"):
        parse_config("c4:\n  a: 1\n  a: 2\n", "f")


def test_the_file_is_read_with_a_bounded_read(tmp_path):
    with pytest.raises(ConfigFileError, match=f"larger than {MAX_CONFIG_BYTES} bytes"):
        read_config_file("/dev/zero", "--options-file")
    (tmp_path / "bin.yaml").write_bytes(b"c4: \xff\xfe\x00")
    with pytest.raises(ConfigFileError, match="not UTF-8"):
        read_config_file(tmp_path / "bin.yaml", "--config")
    with pytest.raises(ConfigFileError, match="cannot read --config .*nope.yaml"):
        read_config_file(tmp_path / "nope.yaml", "--config")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_a_value_or_one_line(text):
    try:
        parse_config(text, "f")
    except ConfigFileError as error:
        assert "\n" not in str(error) and len(str(error)) < 400
