"""Limits is the minimizer's whole configuration: a record of plain JSON values that rebuilds itself."""

import dataclasses
import json

import pytest

from html_minimizer import Limits, minimize


def test_limits_round_trip_through_json():
    limits = Limits(max_attribute_chars=30, max_tags=5_000)
    record = json.loads(json.dumps(dataclasses.asdict(limits)))
    assert Limits.from_dict(record) == limits
    assert Limits.from_dict({}) == Limits()


def test_from_dict_names_the_closest_known_key_of_a_typo():
    with pytest.raises(ValueError, match=r"unknown Limits key 'max_tag'.*'max_tags'") as error:
        Limits.from_dict({"max_tag": 10})
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("value", [0, -1, "100", 1.5, True, None])
def test_a_limit_must_be_a_positive_int(value):
    with pytest.raises(ValueError, match="max_output_chars must be a positive int"):
        Limits.from_dict({"max_output_chars": value})


def test_a_limit_read_from_a_record_applies():
    html = (
        '<html><body><p>Read <a href="https://example.org/a-rather-long-address">this</a>.</p></body></html>'
    )
    kept = minimize(html, limits=Limits.from_dict({"max_attribute_chars": 100})).html
    dropped = minimize(html, limits=Limits.from_dict({"max_attribute_chars": 20})).html
    assert 'href="https://example.org/a-rather-long-address"' in kept
    assert "href" not in dropped and "this" in dropped
