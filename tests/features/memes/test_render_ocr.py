"""Render → OCR round trip with the vendored Anton font on bright, dark and busy backgrounds,
with RapidOCR (the ``cove[ocr]`` extra) and with the tesseract fallback (white-text mask): the
character error rate stays at or under 0.05."""

from __future__ import annotations

import pytest
from PIL import Image

from cove.features.memes import ocr
from cove.features.memes.layout import regions
from cove.features.memes.metrics import cer
from cove.features.memes.render import ANTON, render
from cove.features.memes.templates import default_boxes
from tests.features.memes.images import background

CAPTIONS = {
    "bright": {"top": "Nobody reads the manual", "bottom": "Until the weekend is gone"},
    "dark": {"top": "When the tests pass", "bottom": "On the very first try"},
    "busy": {"top": "One does not simply", "bottom": "Deploy on a Friday night"},
}


@pytest.mark.parametrize("engine", ["rapidocr", "tesseract"])
@pytest.mark.parametrize("kind", ["bright", "dark", "busy"])
def test_rendered_captions_read_back(engine: str, kind: str) -> None:
    text = CAPTIONS[kind]
    im = render(background(kind), default_boxes(), text)
    result = ocr.read(im, engine)
    assert result.engine == engine
    found = regions(result)
    got = {r.position: r.text for r in found}
    assert set(got) == {"top", "bottom"}, got
    for box in ("top", "bottom"):
        assert cer(text[box], got[box]) <= 0.05, (box, text[box], got[box])


def test_words_are_resplit_and_boxes_are_inside_the_image() -> None:
    im = render(background("dark"), default_boxes(), {"top": "What if I told you",
                                                      "bottom": "Everybody loves memes"})
    result = ocr.read(im, "auto")
    assert result.engine == "rapidocr"  # the extra is installed in the test environment
    assert "WHAT IF I TOLD YOU" in result.text and "EVERYBODY LOVES MEMES" in result.text
    for line in result.lines:
        x0, y0, x1, y1 = line.box
        assert 0 <= x0 < x1 <= im.width and 0 <= y0 < y1 <= im.height
        assert [w for w, _ in line.words] == line.text.split()


def test_anton_is_the_vendored_font_with_its_licence() -> None:
    assert ANTON.exists() and (ANTON.parent / "OFL.txt").read_text().startswith(
        "Copyright 2020 The Anton Project Authors")


def test_unknown_engine_is_a_400() -> None:
    from cove.errors import InvalidRequest

    with pytest.raises(InvalidRequest) as e:
        ocr.choose("paddle")
    assert e.value.param == "ocr_engine"


def test_spaces_between_single_letters_are_restored() -> None:
    im = render(background("busy"), default_boxes(), {"top": "Y U NO",
                                                      "bottom": "write documentation"})
    assert ocr.read(im, "rapidocr").text.split("\n")[0] == "Y U NO"


@pytest.mark.parametrize("engine", ["rapidocr", "tesseract"])
@pytest.mark.parametrize("size", [(5000, 1), (4000, 30), (1, 5000), (1999, 1), (1, 1)])
def test_images_too_thin_for_rapidocrs_resize_are_read_not_500(size: tuple[int, int],
                                                                engine: str) -> None:
    # RapidOCR scales the longer side to 2000 px and rounds both to multiples of 32: a thin
    # banner's short side became 0 and it raised ResizeImgError (a 500 on /v1/memes/explain);
    # and its detector scales the shorter side up to 736 px: 1999 x 1 ran out of memory
    got = ocr.read(Image.new("RGB", size, "black"), engine)
    assert (got.width, got.height) == size
    assert got.lines == []


def test_a_thin_banner_is_still_read() -> None:
    im = Image.new("RGB", (4200, 60), "black")
    banner = render(Image.new("RGB", (1400, 60), "black"),
                    [default_boxes()[0].__class__("top", 0, 0, 1, 1)], {"top": "free pizza"})
    for x in (0, 1400, 2800):
        im.paste(banner, (x, 0))
    assert "PIZZA" in ocr.read(im, "rapidocr").text.upper()
