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
for an hour. The pages
left over keep their "has no text layer" note, saying why they were not read.
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
NOT_READ = "page {page} has no text layer (a scan or an image); it was not read"


@dataclass
class Scanned:
    """What OCR made of a document's pages without text: ``texts`` by 1-based page number
    (pages where it read something) and one note per page it was asked about."""

    texts: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def pictures(page: Any) -> list[Image.Image]:
    """The first :data:`MAX_PICTURES` images a pypdf page draws, in RGB (transparency over
    white), those under :data:`MIN_SIDE` left out and those over :data:`MAX_SIDE` scaled down.
    A picture pypdf cannot decode (a damaged stream, an unsupported filter) is skipped."""
    out: list[Image.Image] = []
    try:
        keys = page.images.keys()
    except Exception:  # noqa: BLE001 - damaged resources: no pictures to read
        return []
    for key in keys:
        if len(out) >= MAX_PICTURES:
            break
        try:
            im = page.images[key].image
        except Exception:  # noqa: BLE001 - pypdf and Pillow raise many types on bad images
            continue
        if im is None or min(im.size) < MIN_SIDE:
            continue
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            flat = Image.new("RGB", rgba.size, "white")
            flat.paste(rgba, mask=rgba.getchannel("A"))
            im = flat
        else:
            im = im.convert("RGB")
        if max(im.size) > MAX_SIDE:
            im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        out.append(im)
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
            texts = [_text(im, name) for im in pictures(page)]
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
        else:
            out.notes.append(f"page {number} has no text layer and no image for OCR to read")
    return out


def _text(im: Image.Image, engine: str) -> str:
    _, lines = ocr.read_lines(im, engine)
    return "\n".join(line.text for line in lines)
