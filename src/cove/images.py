"""Image inputs: decoding what clients send, and checking and normalising it with Pillow before
a model sees it or it is stored. A core service (the chat APIs, the web app, the CLI and
``features/memes`` all use it); it knows nothing of HTTP.

What is accepted: PNG, JPEG, GIF, WebP and BMP (Pillow's decoders for those formats only),
given as raw bytes, base64 (Ollama's ``images``) or a ``data:`` URL (OpenAI's ``image_url``,
the web app). Refused, each with a clear :class:`~cove.errors.InvalidRequest`: an ``http(s)``
URL (Cove never fetches one: nothing leaves the machine), bytes that are not an image of those
formats, SVG (a vector format: a document with scripts and external references, not
pixels), truncated files, more pixels than ``max_pixels`` (checked from the header, before
any pixel is decoded, which also stops decompression bombs) and images whose header claims
more than Pillow's own bomb limit.

Normalising: the EXIF orientation is applied (a phone photo stands the right way up), an
animated image (GIF, APNG, WebP) gives its first frame (the others are never decoded; more
than :data:`MAX_FRAMES` frames are refused, counted from the frame headers), transparency is
composited on white, the mode becomes RGB, and an image larger than ``max_side`` on its
longer side is scaled down (Lanczos, after a box reduction by a whole factor when it is over 3
times too large). The result is re-encoded (JPEG for a JPEG source, else PNG), so the same
upload always gives the same bytes, and their SHA-256 is the image's identity (KV-cache reuse,
storage).

A request's images together (:func:`normalise_all`, the chat pipeline's one entry for them):
at most ``max_images`` of them over the whole conversation, and at most ``max_total_pixels``
pixels summed over them, both checked before any pixel is decoded (the count from the list,
the sizes from the headers), so the CPU one request can spend decoding is bounded (about
0.03 s of CPU a megapixel: 3.3 s for 16 flat 6.25-megapixel PNGs of 23 KB each, measured on
the 2-core test machine).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cove.errors import InvalidRequest

FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif",
               "WEBP": "image/webp", "BMP": "image/bmp"}
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_SIDE = 2048
MAX_FRAMES = 200  # an animated image with more frames is refused (only its first is read)
CODE = "invalid_image"  # the error code of a refused image
TOO_MANY = "too_many_images"  # the error code of a request over the count or pixel budget


@dataclass(frozen=True)
class Picture:
    """A checked, normalised image: ``data`` (PNG or JPEG bytes of ``media_type``), its size
    in pixels, and ``digest`` (hex SHA-256 of ``data``)."""

    data: bytes
    media_type: str
    width: int
    height: int

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def rgb(self) -> bytes:
        """The pixels, ``width * height * 3`` bytes, row by row (for libmtmd's bitmaps)."""
        from PIL import Image

        with Image.open(io.BytesIO(self.data)) as im:
            return im.convert("RGB").tobytes()

    def data_url(self) -> str:
        """``data:<media type>;base64,...`` (for the web app and OpenAI-shaped output)."""
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode()}"


def from_url(url: str, param: str) -> bytes:
    """The bytes of an image URL, which must be a ``data:`` URL (base64).

    Raises:
        InvalidRequest: an ``http(s)`` URL (never fetched), another scheme, or a malformed
            ``data:`` URL (naming ``param``).
    """
    head = url[:16].lower().lstrip()
    if head.startswith(("http://", "https://")):
        raise InvalidRequest(
            "image URLs are not fetched (Cove does not go online): send the image itself as "
            "a data: URL (data:image/png;base64,...)", param=param, code=CODE)
    if not head.startswith("data:"):
        raise InvalidRequest("an image must be a data: URL (data:image/png;base64,...)",
                             param=param, code=CODE)
    meta, sep, payload = url.partition(",")
    if not sep or not meta.lower().endswith(";base64"):
        raise InvalidRequest("a data: image URL must be base64 (data:image/png;base64,...)",
                             param=param, code=CODE)
    return from_base64(payload, param)


def from_base64(text: str, param: str) -> bytes:
    """Decode base64 image bytes (a ``data:`` URL prefix is accepted too, as Ollama's clients
    sometimes send one).

    Raises:
        InvalidRequest: not valid base64, or empty.
    """
    if text[:5].lower() == "data:":
        return from_url(text, param)
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidRequest("the image is not valid base64", param=param, code=CODE) from e
    if not data:
        raise InvalidRequest("the image is empty", param=param, code=CODE)
    return data


def image_size(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               param: str = "image") -> tuple[int, int]:
    """``(width, height)`` of image bytes, read from the header only: no pixel is decoded.

    Raises:
        InvalidRequest: as :func:`open_image`, except that a truncated pixel stream is only
            found when the image is decoded.
    """
    with _refusals(max_pixels, param):
        im = _header(data, max_pixels, param)
        size: tuple[int, int] = im.size
        return size


def open_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               param: str = "image") -> Any:
    """``data`` as a checked, decoded Pillow image in RGB, EXIF orientation applied, first
    frame of an animation (see the module docstring).

    Raises:
        InvalidRequest: not an image of an accepted format, SVG, truncated, too many pixels.
    """
    from PIL import ImageOps

    with _refusals(max_pixels, param):
        im = _header(data, max_pixels, param)
        im.load()  # the current frame only: frame 0 of an animation
        fmt = im.format or ""
        im = ImageOps.exif_transpose(im)
        im = _to_rgb(im)
        im.format = fmt
        return im


def _header(data: bytes, max_pixels: int, param: str) -> Any:
    """The image opened lazily (Pillow reads the header, not the pixels), its size and frame
    count checked. Call inside :func:`_refusals`."""
    from PIL import Image

    if not data:
        raise InvalidRequest("the image is empty", param=param, code=CODE)
    if _looks_like_svg(data):
        raise InvalidRequest("SVG images are not supported (send PNG, JPEG, GIF, WebP or BMP)",
                             param=param, code=CODE)
    im: Any = Image.open(io.BytesIO(data), formats=list(FORMATS))
    width, height = im.size
    if width * height > max_pixels:
        raise InvalidRequest(
            f"the image is {width}x{height} pixels, over the limit of "
            f"{max_pixels:,} pixels", param=param, code=CODE)
    frames = getattr(im, "n_frames", 1)
    if frames > MAX_FRAMES:
        raise InvalidRequest(f"the image has {frames} frames, over the limit of "
                             f"{MAX_FRAMES}", param=param, code=CODE)
    return im


@contextmanager
def _refusals(max_pixels: int, param: str) -> Iterator[None]:
    """Pillow's errors (and its decompression-bomb warning) as :class:`InvalidRequest`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except InvalidRequest:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InvalidRequest(f"the image claims more pixels than Pillow decodes safely, more "
                             f"than the limit of {max_pixels:,}",
                             param=param, code=CODE) from e
    except UnidentifiedImageError as e:
        raise InvalidRequest("the data is not an image Cove reads (PNG, JPEG, GIF, WebP or "
                             "BMP)", param=param, code=CODE) from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # truncated, corrupt
        raise InvalidRequest(f"the image could not be decoded (truncated or corrupt: {e})",
                             param=param, code=CODE) from e


def check_count(count: int, max_images: int, param: str) -> None:
    """Refuse a request carrying more than ``max_images`` images (counted over its whole
    conversation), before any is decoded.

    Raises:
        InvalidRequest: ``count > max_images`` (code :data:`TOO_MANY`, naming ``param``).
    """
    if count > max_images:
        raise InvalidRequest(
            f"the request carries {count} images (counting every message of the "
            f"conversation), over the limit of {max_images} a request (COVE_MAX_IMAGES)",
            param=param, code=TOO_MANY)


def normalise_all(images: list[tuple[bytes, str]], *, max_images: int, max_total_pixels: int,
                  max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = DEFAULT_MAX_SIDE,
                  param: str = "messages") -> list[Picture]:
    """Check and normalise every image of a request, ``images`` being ``(bytes, field)``
    pairs (``field`` names the image in errors). Before any pixel is decoded: their number
    (at most ``max_images``) and the sum of their sizes read from their headers (at most
    ``max_total_pixels``), so a request's decoding work is bounded; then each goes through
    :func:`normalise`.

    Raises:
        InvalidRequest: too many images or pixels in all (code :data:`TOO_MANY`, naming
            ``param``), or an image refused by :func:`normalise` (naming its field).
    """
    check_count(len(images), max_images, param)
    total = 0
    for data, where in images:
        width, height = image_size(data, max_pixels=max_pixels, param=where)
        total += width * height
        if total > max_total_pixels:
            raise InvalidRequest(
                f"the request's images hold more than {max_total_pixels:,} pixels in all "
                "(width x height, summed over every image of the conversation; "
                "COVE_IMAGE_MAX_TOTAL_PIXELS): send fewer or smaller images",
                param=param, code=TOO_MANY)
    return [normalise(data, max_pixels=max_pixels, max_side=max_side, param=where)
            for data, where in images]


def normalise(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
              max_side: int = DEFAULT_MAX_SIDE, param: str = "image") -> Picture:
    """Check and normalise image bytes (see the module docstring).

    Raises:
        InvalidRequest: as :func:`open_image`.
    """
    from PIL import Image

    im = open_image(data, max_pixels=max_pixels, param=param)
    fmt = im.format
    if max(im.size) > max_side:
        scale = max_side / max(im.size)
        # reducing_gap: a box-filter reduction by a whole factor first, then Lanczos over
        # at most 3x (Pillow's documented speed-up; the result is all but the same): plain
        # Lanczos from 1 x 40,000,000 pixels took 18 s of CPU for a 74-byte upload
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                       Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = io.BytesIO()
    if fmt == "JPEG":
        im.save(out, format="JPEG", quality=92)
        media = "image/jpeg"
    else:
        im.save(out, format="PNG", optimize=False)
        media = "image/png"
    return Picture(out.getvalue(), media, im.width, im.height)


def _to_rgb(im: Any) -> Any:
    from PIL import Image

    if im.mode == "RGB":
        return im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        back = Image.new("RGB", rgba.size, (255, 255, 255))
        back.paste(rgba, mask=rgba.getchannel("A"))
        return back
    return im.convert("RGB")


def _looks_like_svg(data: bytes) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<svg", b"<?xml")) and b"<svg" in data[:4096].lower()
