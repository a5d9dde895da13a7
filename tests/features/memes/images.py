"""Image fixtures made by the tests: backgrounds for rendered memes and bad files."""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image, ImageDraw


def background(kind: str, size: tuple[int, int] = (800, 600), seed: int = 1) -> Image.Image:
    """A ``bright`` (pale), ``dark`` (near black) or ``busy`` (random coloured shapes) image."""
    if kind == "bright":
        return Image.new("RGB", size, (235, 238, 245))
    if kind == "dark":
        return Image.new("RGB", size, (18, 18, 24))
    rng = random.Random(seed)
    im = Image.new("RGB", size, (120, 110, 100))
    d = ImageDraw.Draw(im)
    for _ in range(160):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        r = rng.randrange(10, 90)
        colour = tuple(rng.randrange(256) for _ in range(3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)((x - r, y - r, x + r, y + r),
                                                           fill=colour)
    return im


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def huge_header_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header claims ``width`` × ``height`` pixels (its data is one row)."""
    data = bytearray(png(Image.new("L", (1, 1))))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def bomb_png() -> bytes:
    """A real decompression bomb: 10,000 × 10,000 bilevel pixels, about 30 KB of PNG."""
    return png(Image.new("1", (10_000, 10_000)))


def many_frames_gif(frames: int = 2000) -> bytes:
    """An animated GIF of ``frames`` 4 × 4 frames (alternating, so none is merged)."""
    images = [Image.new("RGB", (4, 4), (255, 255, 255) if i % 2 else (0, 0, 0))
              for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=20)
    return buf.getvalue()


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
