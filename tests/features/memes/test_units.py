"""The meme feature's parts on their own: image checks, word re-splitting, templates in
memegen's YAML shape, fitting text, the font fallback, regions and the perceptual hash."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from cove.errors import InvalidRequest
from cove.features.memes.builtin import BUILTINS, builtin_image
from cove.features.memes.images import decode_data_url, load_image
from cove.features.memes.layout import position
from cove.features.memes.metrics import cer, word_recall
from cove.features.memes.phash import best_match, dhash, distance
from cove.features.memes.render import ANTON, MIN_SIZE, fit, font_for, render
from cove.features.memes.templates import TextBox, default_boxes, from_yaml, parse_boxes
from cove.features.memes.words import resplit
from tests.features.memes import images


def test_exif_rotation_and_transparency_are_normalised() -> None:
    im = Image.new("RGB", (40, 20), "red")
    exif = im.getexif()
    exif[0x0112] = 6  # rotated 90° clockwise: shown upright as 20 × 40
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif)
    assert load_image(buf.getvalue()).size == (20, 40)
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert load_image(images.png(clear)).getpixel((0, 0)) == (255, 255, 255)


def test_limits_and_data_urls() -> None:
    with pytest.raises(InvalidRequest, match="over the limit"):
        load_image(images.png(Image.new("RGB", (200, 200))), max_pixels=10_000)
    assert decode_data_url("data:image/png;base64,aGk=") == b"hi"
    for bad in ("http://x/a.png", "data:text/plain,hi", "ftp://x"):
        with pytest.raises(InvalidRequest):
            decode_data_url(bad)


@pytest.mark.parametrize("run,split", [
    ("WHENYOU", "WHEN YOU"), ("ONTHEFIRSTTRY", "ON THE FIRST TRY"),
    ("Gettingready", "Getting ready"), ("THERAPIST", "THERAPIST"), ("YEET", "YEET"),
    ("STONKS", "STONKS"), ("DON'T STOP", "DON'T STOP"), ("NOTSURE IF", "NOT SURE IF"),
])
def test_words_run_together_are_split_and_others_kept(run: str, split: str) -> None:
    assert resplit(run) == split


def test_templates_in_memegens_yaml_shape_round_trip() -> None:
    t = BUILTINS["labels"][0]
    back = from_yaml(t.to_yaml(), "x")
    assert back.boxes == t.boxes and back.example == t.example
    with pytest.raises(InvalidRequest):
        from_yaml("text: [{name: top, anchor_x: 2}]", "x")
    for bad in ([], [{"name": "A"}], [{"name": "a"}, {"name": "a"}],
                [{"name": "a", "font": "comic"}], [{"name": "a", "colour": "red"}],
                [{"name": "a", "scale_y": 0}], "top"):
        with pytest.raises(InvalidRequest):
            parse_boxes(bad)


def test_the_largest_size_that_fits_and_text_that_cannot() -> None:
    box = TextBox("top", 0, 0, 1, 0.25)
    short, long = fit("HI", box, 800, 400), fit("A MUCH LONGER CAPTION THAN THAT", box, 800, 400)
    assert short.size > long.size and len(short.lines) == 1 and 1 <= len(long.lines) <= 3
    assert fit("HI", box, 800, 400).path == ANTON
    with pytest.raises(InvalidRequest) as e:
        fit("WORD " * 40, TextBox("tiny", 0, 0, 0.1, 0.05), 400, 400)
    assert e.value.code == "text_does_not_fit" and str(MIN_SIZE) in e.value.message
    with pytest.raises(InvalidRequest):
        render(builtin_image("top-bottom"), default_boxes(), {"nope": "x"})


def test_scripts_anton_lacks_are_set_in_dejavu() -> None:
    assert font_for("Привет мир").name == "DejaVuSans-Bold.ttf"
    assert font_for("ÇA VA, NGƯỜI") == ANTON  # Latin Extended and Vietnamese are in Anton
    im = render(builtin_image("top-bottom"), default_boxes(), {"top": "Ελληνικά"})
    assert im.size == (800, 800)


def test_positions_and_hashes() -> None:
    assert position((0, 0, 100, 50), 900, 900) == "top-left"
    assert position((350, 800, 550, 880), 900, 900) == "bottom"
    a = builtin_image("four-panel")
    assert distance(dhash(a), dhash(a.resize((400, 400)))) <= 4
    assert distance(dhash(a), dhash(builtin_image("labels"))) > 10
    made = render(a, BUILTINS["four-panel"][0].boxes, {"panel_1": "Plan", "panel_2": "Code"})
    cands = [(k, t.name, builtin_image(k), t.boxes) for k, (t, _) in BUILTINS.items()]
    match = best_match(made, [], cands)
    assert match is not None and match.id == "four-panel"


def test_metrics() -> None:
    assert cer("hello world", "HELLO  WORLD") == 0
    assert cer("abcd", "abce") == 0.25
    assert word_recall("one two two", "two one") == pytest.approx(2 / 3)
