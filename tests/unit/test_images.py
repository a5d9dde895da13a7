"""Image checks and normalisation (cove.images)."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from typing import Any

import pytest
from PIL import Image

from cove import images
from cove.errors import InvalidRequest


def encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_formats_are_read_and_normalised_to_rgb() -> None:
    rgba = Image.new("RGBA", (10, 6), (255, 0, 0, 0))  # fully transparent: white after
    for fmt in ("PNG", "GIF", "WEBP", "BMP"):
        pic = images.normalise(encode(rgba if fmt != "BMP" else rgba.convert("RGB"), fmt))
        assert (pic.width, pic.height, pic.media_type) == (10, 6, "image/png")
        assert len(pic.rgb()) == 10 * 6 * 3
    assert images.normalise(encode(rgba, "PNG")).rgb()[:3] == b"\xff\xff\xff"
    jpeg = images.normalise(encode(Image.new("RGB", (8, 8), "blue"), "JPEG"))
    assert jpeg.media_type == "image/jpeg"


def test_same_bytes_same_identity() -> None:
    data = encode(Image.new("RGB", (5, 5), "green"), "PNG")
    assert images.normalise(data).digest == images.normalise(data).digest


def test_exif_orientation_is_applied() -> None:
    im = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    pic = images.normalise(encode(im, "JPEG", exif=exif))
    assert (pic.width, pic.height) == (20, 40)


def test_large_images_are_scaled_down() -> None:
    pic = images.normalise(encode(Image.new("RGB", (400, 100)), "PNG"), max_side=100)
    assert (pic.width, pic.height) == (100, 25)


def test_far_too_large_images_are_box_reduced_before_lanczos(monkeypatch: Any) -> None:
    # plain Lanczos from 1 x 40,000,000 (a 74-byte PNG) to 1 x 2048 took 18 s of CPU: a
    # whole-factor box reduction must come first, so Lanczos never spans more than 3x
    seen: list[tuple[int, int]] = []
    reduce = Image.Image.reduce

    def spy(self: Image.Image, factor: Any, box: Any = None) -> Image.Image:
        seen.append(self.size)
        return reduce(self, factor, box)

    monkeypatch.setattr(Image.Image, "reduce", spy)
    pic = images.normalise(encode(Image.new("RGB", (1, 400_000)), "PNG"), max_side=100)
    assert (pic.width, pic.height) == (1, 100)
    assert seen == [(1, 400_000)]
    seen.clear()
    assert images.normalise(encode(Image.new("RGB", (250, 10)), "PNG"), max_side=100).width \
        == 100
    assert seen == []  # under 3x too large: Lanczos alone, as before


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue", "green")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    rgb = images.normalise(buf.getvalue()).rgb()
    assert rgb[0] > 200 and rgb[2] < 50  # red


def test_an_animation_of_too_many_frames_is_refused() -> None:
    frames = [Image.new("RGB", (4, 4), (i % 2 * 255, 0, 0)) for i in range(images.MAX_FRAMES + 1)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(InvalidRequest, match="frames, over the limit") as e:
        images.normalise(buf.getvalue())
    assert e.value.code == "invalid_image"


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` (no real pixel data)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize(("data", "message"), [
    (b"hello, not an image", "not an image"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "SVG"),
    (b"<?xml version='1.0'?><svg></svg>", "SVG"),
    (_png_header(50_000, 50_000), "more than the limit"),
    (encode(Image.new("RGB", (64, 64)), "PNG")[:-40], "truncated"),
    (encode(Image.new("RGB", (10, 10)), "TIFF"), "not an image"),
])
def test_bad_images_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as e:
        images.normalise(data, param="messages[0].images[0]")
    assert e.value.param == "messages[0].images[0]"


def test_pixel_limit_is_a_setting() -> None:
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(InvalidRequest, match="100x100 pixels, over the limit of 9,999 pixels"):
        images.normalise(data, max_pixels=9_999)
    assert images.normalise(data, max_pixels=10_000).width == 100


def test_data_urls_and_base64() -> None:
    raw = encode(Image.new("RGB", (3, 3)), "PNG")
    b64 = base64.b64encode(raw).decode()
    assert images.from_url(f"data:image/png;base64,{b64}", "u") == raw
    assert images.from_base64(b64, "b") == raw
    assert images.from_base64(f"data:image/png;base64,{b64}", "b") == raw
    with pytest.raises(InvalidRequest, match="not fetched") as e:
        images.from_url("https://example.com/cat.png", "messages[0].content[1].image_url.url")
    assert e.value.param == "messages[0].content[1].image_url.url"
    for bad in ("file:///etc/passwd", "data:image/png,rawtext", "data:image/png;base64,@@@"):
        with pytest.raises(InvalidRequest):
            images.from_url(bad, "u")
    with pytest.raises(InvalidRequest, match="base64"):
        images.from_base64("not base64!", "b")


def test_a_requests_image_count_is_refused_before_any_is_decoded(monkeypatch: Any) -> None:
    decoded: list[bytes] = []
    monkeypatch.setattr(images, "image_size", lambda data, **kw: decoded.append(data))
    junk = [(b"not an image", f"messages[{i}].images") for i in range(4)]
    with pytest.raises(InvalidRequest, match="4 images .* over the limit of 3") as e:
        images.normalise_all(junk, max_images=3, max_total_pixels=10**9)
    assert (e.value.code, e.value.param, e.value.status) == ("too_many_images", "messages", 400)
    assert decoded == []  # not even a header was read


def test_a_requests_pixels_are_summed_from_the_headers() -> None:
    noise = encode(Image.effect_noise((100, 100), 60).convert("RGB"), "PNG")
    truncated = noise[:len(noise) // 2]  # a valid header, half the pixel data
    with pytest.raises(InvalidRequest, match="could not be decoded"):
        images.normalise(truncated)
    # the budget is met by the headers alone: the truncated pixels are never reached
    with pytest.raises(InvalidRequest, match="more than 15,000 pixels in all") as e:
        images.normalise_all([(truncated, "a"), (truncated, "b")], max_images=8,
                             max_total_pixels=15_000, param="input")
    assert (e.value.code, e.value.param) == ("too_many_images", "input")
    pics = images.normalise_all([(noise, "a")], max_images=1, max_total_pixels=10_000)
    assert [(p.width, p.height) for p in pics] == [(100, 100)]
    with pytest.raises(InvalidRequest) as bad:  # a bad image still names its own field
        images.normalise_all([(noise, "a"), (b"junk", "messages[2].images")], max_images=2,
                             max_total_pixels=10**9)
    assert (bad.value.code, bad.value.param) == ("invalid_image", "messages[2].images")
