"""Scanned PDF pages read by OCR: a page with no text layer whose pictures hold its text.

A page's pictures are the images it draws (pypdf's ``page.images``: XObject images, also
inside forms, and inline images), as a scanner or a phone's "scan to PDF" writes them, one
image per page or a few strips. Pages drawn only with vector graphics are not rendered: no
PDF renderer is in Cove's install (PyMuPDF is AGPL, poppler's pdftoppm GPL; pypdfium2 would be
a permissive one but is not a dependency), so their note says there is no image to read.

Each picture is read by the shared OCR engine (:func:`cove.ocr.read_lines`: RapidOCR from the
``cove[ocr]`` extra, else tesseract; ``COVE_OCR_ENGINE`` chooses), its lines joined by newlines.
OCR is CPU work (on two cores shared with other work: an A4 page of four lines at 200 dpi took
RapidOCR 3.4 s and tesseract 0.5 s; a full page of 36 lines at 150 dpi 18 s and 6.5 s). It runs
in the ingest's worker thread, never on the event loop, and is bounded per document: at most
:data:`MAX_PAGES` pages, and no page is started after :data:`MAX_SECONDS` of OCR, so a
thousand-page scan does not hold a worker (or the OCR engine, which one caller uses at a time)
for an hour; the deadline is checked before each picture too. The pages left over keep
their "has no text layer" note, saying why they were not read.

Pictures are found by walking the page's ``/Resources /XObject`` (forms to :data:`MAX_DEPTH`
levels, at most :data:`MAX_NAMES` names a page) and sized from their declared ``/Width`` and
``/Height`` before anything is decoded: one under :data:`MIN_SIDE` px on its shorter side or
over :data:`MAX_PIXELS` is never decoded, at most :data:`MAX_PICTURES` are, and each object
once however many names point at it (a page naming one 4,000,000 x 15 px image 600 times
took 340 s when every name was decoded first). A 600 dpi A4 scan is 35 megapixels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from cove import ocr
from cove.errors import CoveError

MAX_PAGES = 50  # pages without text read by OCR per document, at most
MAX_SECONDS = 180.0  # no page's OCR starts after this much OCR time on one document
MIN_SIDE = 16  # px: smaller pictures (rules, bullets, dots) are not read
MAX_PICTURES = 10  # pictures read per page, at most (the first ones drawn)
MAX_SIDE = 4000  # px: larger pictures are scaled down to this longer side first
MAX_PIXELS = 64_000_000  # px declared (width x height): larger pictures are never decoded
MAX_NAMES = 50  # image and form XObject names looked at per page, at most
MAX_DEPTH = 3  # forms inside forms searched for pictures, levels at most
NOT_READ = "page {page} has no text layer (a scan or an image); it was not read"


@dataclass
class Scanned:
    """What OCR made of a document's pages without text: ``texts`` by 1-based page number
    (pages where it read something) and one note per page it was asked about."""

    texts: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _too_big(xobj: Any) -> bool:
    """Whether an image XObject (or its soft mask) declares more than :data:`MAX_PIXELS`."""
    for im in (xobj, xobj.get("/SMask")):
        if im is None:
            continue
        im = im.get_object()
        if not hasattr(im, "get"):
            continue
        if _int(im.get("/Width")) * _int(im.get("/Height")) > MAX_PIXELS:
            return True
    return False


def xobjects(obj: Any) -> list[Any]:
    """The XObjects a page or form names in its ``/Resources /XObject`` (references, in
    order; none when either is missing or not a dictionary)."""
    resources: Any = obj.get("/Resources")
    resources = resources.get_object() if resources is not None else None
    named: Any = resources.get("/XObject") if hasattr(resources, "get") else None
    named = named.get_object() if named is not None else None
    return list(named.values()) if hasattr(named, "values") else []


def _images(page: Any) -> tuple[list[Any], int]:
    """The image XObjects a page names (its ``/Resources /XObject``, and inside forms to
    :data:`MAX_DEPTH` levels), each underlying object once, with no more than
    :data:`MAX_NAMES` names looked at; and how many were left out as too small, too large or
    past that cap. Nothing is decoded here: sizes come from ``/Width`` and ``/Height``."""
    found: list[Any] = []
    seen: set[Any] = set()
    names = 0
    skipped = 0

    def walk(obj: Any, depth: int) -> None:
        nonlocal names, skipped
        for ref in xobjects(obj):
            names += 1
            if names > MAX_NAMES:
                skipped += 1
                return
            key = getattr(ref, "idnum", None)
            key = (key, ref.generation) if key is not None else id(ref)
            if key in seen:
                continue
            seen.add(key)
            xobj = ref.get_object()
            if not hasattr(xobj, "get"):
                continue
            kind = xobj.get("/Subtype")
            if kind == "/Image":
                side = min(_int(xobj.get("/Width")), _int(xobj.get("/Height")))
                if side < MIN_SIDE or _too_big(xobj):
                    skipped += 1
                else:
                    found.append(xobj)
            elif kind == "/Form" and depth < MAX_DEPTH:
                walk(xobj, depth + 1)

    walk(page, 0)
    return found, skipped


def _decode(xobj: Any) -> Image.Image | None:
    from pypdf.generic._image_xobject import _xobj_to_image  # pypdf's own decoder

    return _xobj_to_image(xobj)[2]


def _rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        im = flat
    else:
        im = im.convert("RGB")
    if max(im.size) > MAX_SIDE:
        im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return im


@dataclass
class Pictures:
    """A page's pictures ready for OCR (RGB) and how many it named but were not decoded
    (``skipped``: too small, too large, past a cap or the deadline) or failed to decode
    (``broken``)."""

    images: list[Image.Image] = field(default_factory=list)
    skipped: int = 0
    broken: int = 0


def pictures(page: Any, deadline: float | None = None,
             clock: Callable[[], float] = time.monotonic) -> Pictures:
    """The first :data:`MAX_PICTURES` images a pypdf page draws, in RGB (transparency over
    white), those over :data:`MAX_SIDE` scaled down. Each image's declared ``/Width`` and
    ``/Height`` are read before it is decoded: one under :data:`MIN_SIDE` (rules, bullets)
    or over :data:`MAX_PIXELS` (its own or its soft mask's) is never decoded; at most
    :data:`MAX_NAMES` XObject names are looked at, each object is decoded once however many
    names point at it, and none is decoded once ``deadline`` (a ``clock()`` reading) has
    passed. A page without image XObjects gives its inline images (pypdf's
    ``page.images``). A picture pypdf cannot decode is counted in ``broken``."""
    out = Pictures()
    try:
        xobjs, out.skipped = _images(page)
    except Exception:  # noqa: BLE001 - damaged resources: no pictures to read
        return out
    if not xobjs and not out.skipped:
        return _inline(page)
    for xobj in xobjs:
        if len(out.images) >= MAX_PICTURES or (deadline is not None and clock() >= deadline):
            out.skipped += 1
            continue
        try:
            im = _decode(xobj)
        except Exception:  # noqa: BLE001 - pypdf and Pillow raise many types on bad images
            im = None
        if im is None:
            out.broken += 1
            continue
        out.images.append(_rgb(im))
    return out


def _inline(page: Any) -> Pictures:
    out = Pictures()
    try:
        keys = [k for k in page.images.keys() if isinstance(k, str) and k.startswith("~")]
    except Exception:  # noqa: BLE001 - a damaged content stream: no pictures to read
        return out
    for key in keys[:MAX_PICTURES]:
        try:
            im = page.images[key].image
        except Exception:  # noqa: BLE001 - pypdf and Pillow raise many types on bad images
            im = None
        if im is None:
            out.broken += 1
        elif min(im.size) < MIN_SIDE or im.size[0] * im.size[1] > MAX_PIXELS:
            out.skipped += 1
        else:
            out.images.append(_rgb(im))
    out.skipped += max(0, len(keys) - MAX_PICTURES)
    return out


def read(pages: dict[int, Any], engine: str = "auto",
         clock: Callable[[], float] = time.monotonic) -> Scanned:
    """OCR of ``pages`` (1-based number → pypdf page, each one without a text layer) with
    ``engine`` (``auto``, ``rapidocr`` or ``tesseract``). With no engine installed every page
    keeps the plain note :data:`NOT_READ`; otherwise a page read gives ``"page N was read by
    OCR (engine)"``, and one not read says why (no image, nothing found, the bound reached,
    the engine failing). Never raises for a page: a page that fails is a note.

    Raises:
        InvalidRequest: an unknown engine name.
    """
    out = Scanned()
    try:
        name = ocr.choose(engine)
    except ocr.OcrUnavailable:
        out.notes = [NOT_READ.format(page=p) for p in pages]
        return out
    spent = 0.0
    for n, (number, page) in enumerate(pages.items()):
        if n >= MAX_PAGES or spent >= MAX_SECONDS:
            out.notes.append(f"page {number} has no text layer; it was not read by OCR (Cove "
                             f"reads at most {MAX_PAGES} such pages of a document, for at "
                             f"most {MAX_SECONDS:.0f} s)")
            continue
        start = clock()
        try:
            got = pictures(page, start + MAX_SECONDS - spent, clock)
            texts = []
            for im in got.images:
                if clock() - start + spent >= MAX_SECONDS:
                    break  # the deadline inside a page too: its other pictures wait
                texts.append(_text(im, name))
        except Exception as e:  # noqa: BLE001 - tesseract failing, onnxruntime refusing
            why = e.message if isinstance(e, CoveError) else type(e).__name__
            out.notes.append(f"page {number} has no text layer; OCR ({name}) failed: {why}")
            continue
        finally:
            spent += clock() - start
        text = "\n\n".join(t for t in texts if t)
        if text.strip():
            out.texts[number] = text
            out.notes.append(f"page {number} was read by OCR ({name})")
        elif texts:
            out.notes.append(f"page {number} has no text layer, and OCR ({name}) found no "
                             "text in its images")
        elif got.images:  # the deadline came before its first picture
            out.notes.append(f"page {number} has no text layer; it was not read by OCR (Cove "
                             f"reads a document's pages for at most {MAX_SECONDS:.0f} s)")
        elif got.broken:
            out.notes.append(f"page {number} has no text layer, and its images could not be "
                             "decoded for OCR")
        elif got.skipped:
            out.notes.append(f"page {number} has no text layer, and none of its images was "
                             f"read by OCR (each must be {MIN_SIDE} px or more on its shorter "
                             f"side and {MAX_PIXELS // 10**6} megapixels or less; at most "
                             f"{MAX_NAMES} image names a page are looked at)")
        else:
            out.notes.append(f"page {number} has no text layer and no image for OCR to read")
    return out


def _text(im: Image.Image, engine: str) -> str:
    _, lines = ocr.read_lines(im, engine)
    return "\n".join(line.text for line in lines)
