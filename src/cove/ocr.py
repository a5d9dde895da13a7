"""OCR engines, shared by every feature that reads text from pictures (meme text in
:mod:`cove.features.memes.ocr`, scanned PDF pages in :mod:`cove.features.search.extract`).

Two engines: RapidOCR (PP-OCR detection and recognition models shipped inside the ``rapidocr``
wheel, run by onnxruntime with one thread per core) when the ``cove[ocr]`` extra is installed,
else Debian's ``tesseract`` program. This module only chooses the engine and reads an image's
lines of text with it, as each engine gives them; what a feature does before (masks, scaling)
and after (re-splitting words, second looks) is the feature's own.

Shapes: a :data:`Box` is ``(left, top, right, bottom)`` in pixels of the image given; a
:class:`Line` is one line of text with its box, confidence 0..1 and word boxes.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from cove.errors import CoveError, InvalidRequest

Box = tuple[int, int, int, int]  # left, top, right, bottom (px)
Word = tuple[str, Box, float]  # text, box, confidence 0..1
ENGINES = ("auto", "rapidocr", "tesseract")
TESSERACT = "tesseract"
TESSERACT_TIMEOUT = 120  # seconds one tesseract run may take
RAPID_MAX_ASPECT = 4  # longer side / shorter side of what RapidOCR is given, at most
rapid_lock = threading.Lock()  # one onnxruntime session set, used by one caller at a time


class OcrUnavailable(CoveError):
    """No OCR engine is installed, or tesseract failed (HTTP 503)."""

    status = 503
    type = "server_error"
    code = "ocr_unavailable"


@dataclass
class Line:
    """A line of text: ``text``, pixel ``box``, ``confidence`` 0..1 and the ``words`` with
    their boxes (estimated from character positions for RapidOCR)."""

    text: str
    box: Box
    confidence: float
    words: list[tuple[str, Box]] = field(default_factory=list)


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def rapidocr_installed() -> bool:
    """Whether the ``cove[ocr]`` extra (rapidocr and onnxruntime) is importable."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("rapidocr", "onnxruntime"))


def tesseract_installed() -> bool:
    """Whether the ``tesseract`` program is on PATH."""
    return shutil.which(TESSERACT) is not None


def choose(engine: str = "auto") -> str:
    """The engine to use for ``engine`` (``auto``: RapidOCR when installed, else tesseract).

    Raises:
        InvalidRequest: an unknown engine name. OcrUnavailable: the engine is not installed.
    """
    if engine not in ENGINES:
        raise InvalidRequest(f"unknown OCR engine {engine!r}; expected one of "
                             f"{', '.join(ENGINES)}", param="ocr_engine")
    if engine in ("auto", "rapidocr") and rapidocr_installed():
        return "rapidocr"
    if engine in ("auto", "tesseract") and tesseract_installed():
        return "tesseract"
    raise OcrUnavailable("no OCR engine is installed: pip install 'cove[ocr]' (RapidOCR) or "
                         "apt-get install tesseract-ocr")


@functools.cache
def rapid() -> Any:
    """The RapidOCR engine, built once (call it holding :data:`rapid_lock`)."""
    from rapidocr import RapidOCR

    return RapidOCR(params={
        "Global.log_level": "error",
        "EngineConfig.onnxruntime.intra_op_num_threads": cores(),
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    })


def word_boxes(text: str, box: Box) -> list[tuple[str, Box]]:
    """Boxes of the words of a line, by their share of the line's characters."""
    x0, y0, x1, y1 = box
    n = max(1, len(text))
    out, at = [], 0
    for word in text.split(" "):
        if word:
            a = x0 + (x1 - x0) * at / n
            b = x0 + (x1 - x0) * (at + len(word)) / n
            out.append((word, (round(a), y0, round(b), y1)))
        at += len(word) + 1
    return out


def padded_for_rapidocr(im: Image.Image) -> Image.Image:
    """``im`` in RGB, extended to the right or bottom with its corner's colour so that its
    longer side is at most :data:`RAPID_MAX_ASPECT` times its shorter one. RapidOCR scales an
    image's longer side down to 2000 px and rounds each side to a multiple of 32 (a thin
    banner's shorter side became 0: ``ResizeImgError``), then its detector scales the
    shorter side *up* to 736 px and the longer one with it (a 1999 x 1 image became about
    1.5 million pixels long and took all the memory). The picture stays at (0, 0), so the
    boxes found are boxes of ``im``."""
    rgb = im.convert("RGB")
    w, h = rgb.size
    need = -(-max(w, h) // RAPID_MAX_ASPECT)  # ceil
    if min(w, h) >= need:
        return rgb
    out = Image.new("RGB", (w, need) if w >= h else (need, h), rgb.getpixel((0, 0)))
    out.paste(rgb, (0, 0))
    return out


def rapidocr_recognise(crop: Image.Image) -> tuple[str, float]:
    """RapidOCR's recognition alone (no detection) of one line's crop: (text, score)."""
    import numpy as np

    with rapid_lock:
        r = rapid()(np.asarray(crop.convert("RGB"))[:, :, ::-1], use_det=False,
                    use_cls=False, use_rec=True)
    if not r.txts:
        return "", 0.0
    return str(r.txts[0]), float(r.scores[0]) if r.scores else 0.0


def rapidocr_lines(im: Image.Image) -> list[Line]:
    """The lines RapidOCR finds and reads in ``im`` (detection, direction, recognition; a very
    thin image padded first, :func:`padded_for_rapidocr`), whitespace collapsed, empty lines
    left out, in the engine's order."""
    import numpy as np

    with rapid_lock:
        # BGR, as it expects; the stages named every time (RapidOCR keeps the last call's)
        result = rapid()(np.asarray(padded_for_rapidocr(im))[:, :, ::-1], use_det=True,
                         use_cls=True, use_rec=True)
    lines = []
    for quad, text, score in zip(result.boxes if result.boxes is not None else [],
                                 result.txts or (), result.scores or (), strict=False):
        xs, ys = [p[0] for p in quad], [p[1] for p in quad]
        box = (max(0, int(min(xs))), max(0, int(min(ys))), min(im.width, int(max(xs)) + 1),
               min(im.height, int(max(ys)) + 1))
        text = " ".join(str(text).split())
        if text:
            lines.append(Line(text, box, float(score), word_boxes(text, box)))
    return lines


def tesseract_words(im: Image.Image, psm: int, lang: str = "eng") -> list[list[Word]]:
    """The words tesseract reads in ``im`` (page segmentation mode ``psm``: 3 for a page of
    text, 11 for sparse text), grouped by the line tesseract put them on (its TSV output's
    block, paragraph and line numbers), lines in tesseract's reading order. Words tesseract
    gives no confidence (-1) are left out.

    Raises:
        OcrUnavailable: tesseract cannot run, fails, or takes over 120 s.
    """
    buf = io.BytesIO()
    im.save(buf, "PNG")
    try:
        done = subprocess.run([TESSERACT, "stdin", "stdout", "--psm", str(psm), "-l", lang,
                               "tsv"], input=buf.getvalue(), capture_output=True,
                              timeout=TESSERACT_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise OcrUnavailable(f"tesseract failed to run ({e})") from e
    if done.returncode != 0:
        raise OcrUnavailable("tesseract failed: " + done.stderr.decode(errors="replace")[-300:])
    groups: dict[tuple[str, ...], list[Word]] = {}
    for row in done.stdout.decode("utf-8", errors="replace").splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5" or not cols[11].strip():
            continue
        conf = float(cols[10])
        if conf < 0:
            continue
        left, top, w, h = (int(c) for c in cols[6:10])
        groups.setdefault(tuple(cols[1:5]), []).append(
            (cols[11].strip(), (left, top, left + w, top + h), conf / 100))
    return list(groups.values())


def line_of(words: list[Word]) -> Line:
    """One line made of ``words``: their texts joined by spaces, the box around them, their
    mean confidence."""
    box = (min(w[1][0] for w in words), min(w[1][1] for w in words),
           max(w[1][2] for w in words), max(w[1][3] for w in words))
    return Line(" ".join(t for t, _, _ in words), box, sum(w[2] for w in words) / len(words),
                [(t, b) for t, b, _ in words])


def read_lines(im: Image.Image, engine: str = "auto", psm: int = 3) -> tuple[str, list[Line]]:
    """The lines of text in ``im`` as ``engine`` (see :func:`choose`) reads them, without any
    feature's processing: ``(engine used, lines in reading order)``. Tesseract reads with
    page segmentation mode ``psm`` (3: a page of text); RapidOCR's lines come in its own
    order (its detector sorts boxes top to bottom, then left to right on one row).

    Raises:
        InvalidRequest: an unknown engine. OcrUnavailable: none installed or tesseract failed.
    """
    name = choose(engine)
    if name == "rapidocr":
        lines = rapidocr_lines(im)
    else:
        lines = [line_of(words) for words in tesseract_words(im, psm) if words]
    return name, lines
