"""Files to text: each format to a list of :class:`Section` (text under one heading path, on
one page), and a check that the bytes are what the name says.

Formats: plain text (UTF-8, UTF-16 with BOM), Markdown (split at ATX headings outside code
fences), HTML (``script``/``style``/``template``/``noscript`` dropped, split at ``h1``-``h6``),
PDF (pypdf, text per page; a page without a text layer is read by OCR when an engine is
installed, :mod:`.scans`, else reported in the notes, never guessed; pages past the text
bounds, :data:`PDF_MAX_PAGE_BYTES` of decoded content a page, :data:`PDF_MAX_DOCUMENT_BYTES`
a document counting a shared stream on each page, :data:`PDF_MAX_SECONDS`, are left unread
with a note: three pages sharing one 5 MB stream of ``q Q`` took pypdf 18 s) and DOCX
(python-docx; paragraphs styled ``Title`` / ``Heading N`` make the heading path).

Every failure raises :class:`~cove.errors.InvalidRequest` with ``code="unsupported_file"`` (a
type Cove does not read, or bytes that are not what the file name claims) or
``code="unreadable_file"`` (corrupt, encrypted, or a zip bomb).
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cove.errors import InvalidRequest
from cove.features.search import scans

KINDS = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
         ".html": "html", ".htm": "html", ".pdf": "pdf", ".docx": "docx"}
# a DOCX whose parts unpack to more than this, or 100x their packed size, is refused
DOCX_MAX_UNPACKED = 200 * 1024 * 1024
DOCX_MAX_RATIO = 100
# a PDF's text layer: pages whose content streams (and forms) decode to more than this are
# not read, nor pages past the document's sum (a stream shared by pages counts on each) or
# started after PDF_MAX_SECONDS; a text page is 5-50 kB, a 1,000-page book 10-50 MB
PDF_MAX_PAGE_BYTES = 8 * 2**20
PDF_MAX_DOCUMENT_BYTES = 128 * 2**20
PDF_MAX_FORMS = 1000  # form XObjects named by one page (and its forms), at most
PDF_MAX_SECONDS = 180.0


@dataclass
class Section:
    """Text of one part of a document: ``heading`` is the heading path (outermost first),
    ``page`` the 1-based page number (PDF) or None, ``offset`` where ``text`` starts in the
    file's text (plain text and Markdown) or None (then: in the extracted text, sections
    joined by a blank line)."""

    text: str
    heading: tuple[str, ...] = ()
    page: int | None = None
    offset: int | None = None


@dataclass
class Extracted:
    """A document's ``sections`` in reading order, its ``kind``, page count and ``notes``."""

    kind: str
    sections: list[Section]
    pages: int | None = None
    notes: list[str] = field(default_factory=list)


def unsupported(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="file", code="unsupported_file")


def unreadable(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="file", code="unreadable_file")


def kind_of(filename: str) -> str:
    """The format of ``filename`` by its extension.

    Raises:
        InvalidRequest: an extension Cove does not read.
    """
    suffix = ("." + filename.rsplit(".", 1)[-1].lower()) if "." in filename else ""
    if suffix not in KINDS:
        raise unsupported(f"{filename!r}: Cove reads {', '.join(sorted(KINDS))} files")
    return KINDS[suffix]


def decode_text(data: bytes, filename: str) -> str:
    """``data`` as text: UTF-8 (BOM optional) or UTF-16 with a BOM.

    Raises:
        InvalidRequest: binary data (NUL bytes) or another encoding.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as e:
            raise unreadable(f"{filename!r} is not valid UTF-16 text") from e
    if b"\x00" in data[:8192]:
        raise unsupported(f"{filename!r} is binary data, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise unsupported(f"{filename!r} is not UTF-8 text") from e


_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def markdown_sections(text: str) -> list[Section]:
    """Markdown split at ATX headings (``#`` to ``######``), each section keeping its heading
    path; lines inside fenced code blocks are never headings (CommonMark's rules, simplified)."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    fenced = False
    at = 0

    def flush() -> None:
        nonlocal at
        body = "".join(lines)
        if body.strip():
            sections.append(Section(body, tuple(t for _, t in path), offset=at))
        at += len(body)
        lines.clear()

    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            fenced = not fenced
        m = None if fenced else _HEADING.match(line.rstrip("\n"))
        if m:
            flush()
            level = len(m.group(1))
            path = [(lv, t) for lv, t in path if lv < level] + [(level, m.group(2).strip())]
            lines.append(line)  # the heading's words are searchable too
        else:
            lines.append(line)
    flush()
    return sections


class _Html:
    """An lxml parser target (``start``/``end``/``data`` callbacks) collecting sections."""

    SKIP = {"script", "style", "template", "noscript", "title"}
    BLOCK = {"p", "div", "br", "li", "tr", "section", "article", "blockquote", "pre", "table",
             "ul", "ol", "dd", "dt", "hr"}

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.path: list[tuple[int, str]] = []
        self.buf: list[str] = []
        self.skip = 0
        self.heading: int | None = None
        self.heading_text: list[str] = []

    def flush(self) -> None:
        body = re.sub(r"[ \t]+", " ", "".join(self.buf))
        body = re.sub(r"\n\s*\n\s*", "\n\n", body).strip()
        if body:
            self.sections.append(Section(body, tuple(t for _, t in self.path)))
        self.buf.clear()

    def start(self, tag: str, attrib: object) -> None:
        if tag in self.SKIP:
            self.skip += 1
        elif re.fullmatch(r"h[1-6]", tag) and not self.skip:
            self.flush()
            self.heading, self.heading_text = int(tag[1]), []
        elif tag in self.BLOCK:
            self.buf.append("\n\n" if tag == "p" else "\n")

    def end(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif self.heading is not None and tag == f"h{self.heading}":
            title = " ".join("".join(self.heading_text).split())
            self.path = [(lv, t) for lv, t in self.path if lv < self.heading] + [
                (self.heading, title)]
            self.buf.append(title + "\n\n")
            self.heading = None
        elif tag in self.BLOCK:
            self.buf.append("\n")

    def data(self, data: str) -> None:
        if self.skip:
            return
        (self.heading_text if self.heading is not None else self.buf).append(data)

    def close(self) -> None:
        self.flush()


def html_sections(text: str) -> list[Section]:
    """Visible text of an HTML page, split at its headings. Parsed by libxml2's HTML parser
    through lxml (a dependency of python-docx; C speed, about ten times Python's
    ``html.parser``) with a Python target: no tree is built, no network is used, and the HTML
    parser defines no entities of a document's own, so there is no entity expansion to bomb."""
    from lxml import etree

    target = _Html()
    parser = etree.HTMLParser(target=target, no_network=True, remove_comments=True,
                              remove_pis=True)
    if text.strip():
        parser.feed(text)
        parser.close()
    return target.sections


def pdf(data: bytes, filename: str, ocr_engine: str = "auto",
        clock: Callable[[], float] = time.monotonic) -> Extracted:
    """Text per page of a PDF (pypdf). Pages with no text layer are read by OCR with
    ``ocr_engine`` (:func:`.scans.read`, bounded per document) and every one of them gets a
    note in ``notes``: read by OCR, or why not. The text layer is bounded per document
    (``clock`` in seconds): a page whose content decodes to more than
    :data:`PDF_MAX_PAGE_BYTES`, one past :data:`PDF_MAX_DOCUMENT_BYTES` for the document, or
    one reached after :data:`PDF_MAX_SECONDS` is not read and gets a note saying so.

    Raises:
        InvalidRequest: not a PDF, corrupt, encrypted with a password (``unreadable_file``),
            or no page read within those bounds (``unreadable_file``).
    """
    if not data.lstrip()[:5].startswith(b"%PDF-"):
        raise unsupported(f"{filename!r} is named .pdf but is not a PDF file")
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise unreadable(f"{filename!r} is encrypted with a password; Cove cannot read it")
        texts, cut = _page_texts(reader.pages, clock)
        blank = {i + 1: page for i, page in enumerate(reader.pages)
                 if i + 1 not in cut and not texts[i].strip()}
    except InvalidRequest:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError, NotImplementedError) as e:  # pypdf's errors on damaged files
        raise unreadable(f"{filename!r} is a damaged PDF ({type(e).__name__}: {e})") from e
    except Exception as e:  # noqa: BLE001 - and its asserts, struct and zlib errors, ...
        raise unreadable(f"{filename!r} is a damaged PDF ({type(e).__name__})") from e
    scanned = scans.read(blank, ocr_engine) if blank else scans.Scanned()
    texts = [scanned.texts.get(i + 1, t) for i, t in enumerate(texts)]
    sections = [Section(t, page=i + 1) for i, t in enumerate(texts) if t.strip()]
    notes = sorted([*cut.items(), *((_page_of(n), n) for n in scanned.notes)])
    if cut and not sections:
        raise unreadable(f"{filename!r}: no page could be read within Cove's bounds ("
                         + "; ".join(cut.values()) + ")")
    return Extracted("pdf", sections, pages=len(texts), notes=[n for _, n in notes])


def _page_of(note: str) -> int:
    m = re.match(r"page (\d+)", note)
    return int(m.group(1)) if m else 0


def _stream_bytes(obj: Any, sizes: dict[Any, int]) -> int:
    """Decoded length of a stream, decoded once per document (``sizes`` by reference)."""
    ref = obj if hasattr(obj, "idnum") else getattr(obj, "indirect_reference", None)
    key = (ref.idnum, ref.generation) if ref is not None else id(obj)
    if key not in sizes:
        sizes[key] = len(obj.get_object().get_data())
    return sizes[key]


def _content_bytes(page: Any, sizes: dict[Any, int]) -> int:
    """What ``page.extract_text`` would parse: the decoded bytes of the page's content
    streams and of the forms it names (to :data:`scans.MAX_DEPTH` levels, each form once per
    name), every stream counted again on each page that uses it. A page naming more than
    :data:`PDF_MAX_FORMS` forms counts as over any bound."""
    total = 0
    contents = page.get("/Contents")
    contents = contents.get_object() if contents is not None else None
    for part in (contents if isinstance(contents, list) else [contents] if contents else []):
        total += _stream_bytes(part, sizes)
    forms = 0

    def walk(obj: Any, depth: int) -> None:
        nonlocal total, forms
        for ref in scans.xobjects(obj):
            xobj = ref.get_object()
            if not hasattr(xobj, "get") or xobj.get("/Subtype") != "/Form":
                continue
            forms += 1
            if forms > PDF_MAX_FORMS or total > PDF_MAX_PAGE_BYTES:
                total = PDF_MAX_DOCUMENT_BYTES + 1
                return
            total += _stream_bytes(ref, sizes)
            if depth < scans.MAX_DEPTH:
                walk(xobj, depth + 1)

    walk(page, 0)
    return total


def _page_texts(pages: Any, clock: Callable[[], float]) -> tuple[list[str], dict[int, str]]:
    """Each page's text layer (``page.extract_text``), and a note by page number for the
    pages not read: over :data:`PDF_MAX_PAGE_BYTES` of content, past
    :data:`PDF_MAX_DOCUMENT_BYTES` for the document, or after :data:`PDF_MAX_SECONDS`."""
    texts: list[str] = []
    cut: dict[int, str] = {}
    sizes: dict[Any, int] = {}
    spent = 0
    deadline = clock() + PDF_MAX_SECONDS
    for number, page in enumerate(pages, 1):
        texts.append("")
        if clock() >= deadline:
            cut[number] = (f"page {number} was not read: Cove reads a PDF's text for at most "
                           f"{PDF_MAX_SECONDS:.0f} s")
            continue
        size = _content_bytes(page, sizes)
        if size > PDF_MAX_PAGE_BYTES:
            cut[number] = (f"page {number} was not read: its content is over "
                           f"{PDF_MAX_PAGE_BYTES / 2**20:.3g} MB decoded (Cove's bound a page)")
            continue
        if spent + size > PDF_MAX_DOCUMENT_BYTES:
            cut[number] = (f"page {number} was not read: the document's pages are over "
                           f"{PDF_MAX_DOCUMENT_BYTES / 2**20:.3g} MB of content decoded (Cove's "
                           "bound a document)")
            continue
        spent += size
        texts[-1] = page.extract_text() or ""
    return texts, cut


def _check_zip(data: bytes, filename: str) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            names = {i.filename for i in infos}
    except zipfile.BadZipFile as e:
        raise unsupported(f"{filename!r} is named .docx but is not a DOCX file") from e
    if "word/document.xml" not in names:
        raise unsupported(f"{filename!r} is a zip archive but not a Word document")
    unpacked = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    if unpacked > DOCX_MAX_UNPACKED or unpacked > DOCX_MAX_RATIO * packed + 1024 * 1024:
        raise unreadable(f"{filename!r} unpacks to {unpacked} bytes from {packed}: refused "
                         "as a zip bomb")


def docx(data: bytes, filename: str) -> Extracted:
    """Paragraphs and table cells of a DOCX (python-docx), split at ``Title``/``Heading N``
    paragraphs, each section keeping its heading path.

    Raises:
        InvalidRequest: not a DOCX, corrupt, or a zip bomb.
    """
    _check_zip(data, filename)
    import docx as python_docx

    try:
        document = python_docx.Document(io.BytesIO(data))
    except Exception as e:  # noqa: BLE001 - python-docx raises many types on damaged parts
        raise unreadable(f"{filename!r} is a damaged DOCX ({type(e).__name__})") from e
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []

    def flush() -> None:
        if "".join(lines).strip():
            sections.append(Section("\n\n".join(lines), tuple(t for _, t in path)))
        lines.clear()

    for para in document.paragraphs:
        style = (para.style.name if para.style is not None else "") or ""
        m = re.fullmatch(r"Heading (\d)", style)
        level = 0 if style == "Title" else int(m.group(1)) if m else None
        if level is not None and para.text.strip():
            flush()
            path = [(lv, t) for lv, t in path if lv < level] + [(level, para.text.strip())]
        if para.text.strip():
            lines.append(para.text)
    for table in document.tables:
        for row in table.rows:
            cells = [c.text.strip() for c in row.cells if c.text.strip()]
            if cells:
                lines.append(" | ".join(cells))
    flush()
    return Extracted("docx", sections)


def extract(data: bytes, filename: str, ocr_engine: str = "auto") -> Extracted:
    """The sections of a file, read by the format its name says (after checking the bytes
    agree); ``ocr_engine`` reads a PDF's pages without a text layer (:func:`pdf`).

    Raises:
        InvalidRequest: see the module docstring.
    """
    kind = kind_of(filename)
    if kind == "pdf":
        return pdf(data, filename, ocr_engine)
    if kind == "docx":
        return docx(data, filename)
    if data[:5] == b"%PDF-" or data[:4] == b"PK\x03\x04":
        raise unsupported(f"{filename!r} is named as text but holds a PDF or zip file")
    text = decode_text(data, filename)
    if kind == "markdown":
        return Extracted(kind, markdown_sections(text))
    if kind == "html":
        return Extracted(kind, html_sections(text))
    return Extracted(kind, [Section(text, offset=0)] if text.strip() else [])
