"""Reading an uploaded image safely with Pillow: format, size, pixel and frame limits, EXIF
rotation, RGB out.

The checks are the core's (:mod:`cove.images`, shared with every image input); this module
adds the byte limit of uploads and encoding rendered memes.
"""

from __future__ import annotations

import io

from PIL import Image

from cove.errors import InvalidRequest, PayloadTooLarge
from cove.images import DEFAULT_MAX_PIXELS, from_url, open_image


def load_image(data: bytes, *, param: str = "file", max_pixels: int = DEFAULT_MAX_PIXELS,
               max_bytes: int | None = None) -> Image.Image:
    """Decode ``data`` (PNG, JPEG, WebP, GIF or BMP) into an RGB image, upright per its EXIF
    orientation, transparency on white; of an animated image the first frame. The checks are
    the core's (:func:`cove.images.open_image`: the header is read first, so a decompression
    bomb is never decoded).

    Raises:
        PayloadTooLarge: more than ``max_bytes`` bytes.
        InvalidRequest (``param``, code ``invalid_image``): empty, not an image, SVG, another
            format, truncated or corrupt, over the pixel limit, or too many frames.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise PayloadTooLarge(f"the image is over the limit of {max_bytes} bytes")
    im: Image.Image = open_image(data, max_pixels=max_pixels, param=param)
    return im


def decode_data_url(url: str, param: str = "image") -> bytes:
    """The bytes of a base64 ``data:image/...;base64,...`` URL (:func:`cove.images.from_url`).

    Raises:
        InvalidRequest (``param``): an http(s) URL (Cove never fetches), another scheme, or bad
            base64.
    """
    return from_url(url, param)


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
