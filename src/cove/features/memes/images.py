"""Reading an uploaded image safely with Pillow: format, size, pixel and frame limits, EXIF
rotation, RGB out.

Kept small and on its own so that the core's image checks (the ``vision`` work: engine and
pipeline image input) can replace it: :func:`load_image` is the one entry point the feature
uses, and :func:`decode_data_url` the one for ``data:`` URLs.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from cove.errors import InvalidRequest, PayloadTooLarge

FORMATS = {"PNG", "JPEG", "WEBP", "GIF", "BMP"}
MAX_FRAMES = 200  # an animated GIF or WebP with more frames is refused (only frame 1 is read)
DEFAULT_MAX_PIXELS = 40_000_000
_DATA_URL = re.compile(r"data:(image/[\w.+-]+)?(;[\w=.+-]+)*;base64,(.*)", re.S | re.I)


def _looks_like_svg(data: bytes) -> bool:
    head = data[:1024].lstrip().lower()
    return head.startswith((b"<svg", b"<?xml", b"<!doctype svg")) or b"<svg" in head


def load_image(data: bytes, *, param: str = "file", max_pixels: int = DEFAULT_MAX_PIXELS,
               max_bytes: int | None = None) -> Image.Image:
    """Decode ``data`` (PNG, JPEG, WebP, GIF or BMP) into an RGB image, upright per its EXIF
    orientation; of an animated image the first frame.

    The header is read first and the pixels decoded only when width × height is within
    ``max_pixels`` and the frame count within :data:`MAX_FRAMES`, so a decompression bomb (a
    small file of huge dimensions) never gets decoded.

    Raises:
        PayloadTooLarge: more than ``max_bytes`` bytes.
        InvalidRequest (``param``, code ``invalid_image``): empty, not an image, SVG, another
            format, truncated or corrupt, over the pixel limit, or too many frames.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise PayloadTooLarge(f"the image is over the limit of {max_bytes} bytes")
    if not data:
        raise InvalidRequest("the image is empty", param=param, code="invalid_image")
    if _looks_like_svg(data):
        raise InvalidRequest("SVG images are not supported; send PNG, JPEG, WebP or GIF",
                             param=param, code="invalid_image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            fmt = im.format or ""
            if fmt not in FORMATS:
                raise InvalidRequest(f"images in {fmt or 'this'} format are not supported; "
                                     "send PNG, JPEG, WebP or GIF", param=param,
                                     code="invalid_image")
            w, h = im.size
            if w < 1 or h < 1 or w * h > max_pixels:
                raise InvalidRequest(f"the image is {w}×{h} pixels, over the limit of "
                                     f"{max_pixels:,} pixels", param=param, code="invalid_image")
            frames = getattr(im, "n_frames", 1)
            if frames > MAX_FRAMES:
                raise InvalidRequest(f"the image has {frames} frames, over the limit of "
                                     f"{MAX_FRAMES}", param=param, code="invalid_image")
            im.seek(0)
            im.load()
            upright: Image.Image = ImageOps.exif_transpose(im) or im
            if upright.mode in ("RGBA", "LA", "P", "PA"):
                rgba = upright.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (255, 255, 255))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                return flat
            return upright.convert("RGB")
    except InvalidRequest:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InvalidRequest(f"the image is too large to decode ({e})", param=param,
                             code="invalid_image") from e
    except UnidentifiedImageError as e:
        raise InvalidRequest("the file is not an image Cove can read (PNG, JPEG, WebP, GIF)",
                             param=param, code="invalid_image") from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # truncated or corrupt data
        raise InvalidRequest(f"the image is truncated or corrupt ({e})", param=param,
                             code="invalid_image") from e


def decode_data_url(url: str, param: str = "image") -> bytes:
    """The bytes of a base64 ``data:image/...;base64,...`` URL.

    Raises:
        InvalidRequest (``param``): an http(s) URL (Cove never fetches), another scheme, or bad
            base64.
    """
    if url.startswith(("http://", "https://")):
        raise InvalidRequest("image URLs are not fetched; send the image itself as a "
                             "data: URL or a file", param=param, code="invalid_image")
    m = _DATA_URL.fullmatch(url.strip())
    if m is None:
        raise InvalidRequest("expected a base64 data: URL (data:image/png;base64,...)",
                             param=param, code="invalid_image")
    try:
        return base64.b64decode(m.group(3), validate=False)
    except (binascii.Error, ValueError) as e:
        raise InvalidRequest("the data: URL's base64 is invalid", param=param,
                             code="invalid_image") from e


def encode(im: Image.Image, fmt: str = "png", quality: int = 90) -> bytes:
    """``im`` as PNG, JPEG or WebP bytes.

    Raises:
        InvalidRequest: another format (param ``format``).
    """
    name = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}.get(fmt.lower())
    if name is None:
        raise InvalidRequest(f"unknown format {fmt!r}; expected png, jpeg or webp",
                             param="format")
    out = io.BytesIO()
    im.convert("RGB").save(out, name, **({} if name == "PNG" else {"quality": quality}))
    return out.getvalue()


MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg",
               "webp": "image/webp"}
