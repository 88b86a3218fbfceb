"""replace_images: the pipeline writes VQGAN codes into <img src> or drops images it could not fetch."""

from html_minimizer import replace_images

DOC = (
    '<html lang="en"><head><title>T</title></head><body><p>before <img alt="A" src="http://x.org/a.png"> '
    'after <img src="http://x.org/b.png"> end</p><div><img src="http://x.org/c.png"></div></body></html>'
)


def test_value_replaces_src_and_keeps_alt_first():
    out = replace_images(DOC, {"http://x.org/a.png": "1 2 3"})
    assert '<img alt="A" src="1 2 3">' in out
    assert '<img src="http://x.org/b.png">' in out


def test_none_removes_the_image_but_keeps_its_tail_text():
    out = replace_images(DOC, {"http://x.org/b.png": None})
    assert "http://x.org/b.png" not in out
    assert "after end</p>" in out


def test_first_child_image_removed_keeps_tail_in_parent_text():
    out = replace_images(
        '<html><body><p><img src="http://x.org/a.png"> caption</p></body></html>',
        {"http://x.org/a.png": None},
    )
    assert out == "<html><body><p>caption</p></body></html>"


def test_images_not_in_the_mapping_are_untouched():
    assert replace_images(DOC, {}) == DOC
    assert replace_images(DOC, {"http://elsewhere/x.png": "9"}) == DOC


def test_every_image_with_the_same_src_is_rewritten():
    doc = '<html><body><p><img src="http://x/a.png">x<img src="http://x/a.png"></p></body></html>'
    out = replace_images(doc, {"http://x/a.png": "7 7"})
    assert out.count('src="7 7"') == 2


def test_attributes_are_written_sorted_and_escaped():
    doc = '<html><body><p><img title="t &amp; &quot;q&quot;" src="http://x/a.png" alt="a&lt;b"></p></body></html>'
    out = replace_images(doc, {"http://x/a.png": "1"})
    assert '<img alt="a&lt;b" src="1" title="t &amp; &quot;q&quot;">' in out


def test_same_output_twice():
    mapping = {"http://x.org/a.png": "4 5", "http://x.org/c.png": None}
    assert replace_images(DOC, mapping) == replace_images(DOC, mapping)
