"""Document fixtures built by the tests: PDFs (fpdf2; scanned pages drawn with Pillow in
DejaVu Serif), DOCX (python-docx), a DOCX zip bomb."""

from __future__ import annotations

import io
import zipfile

from PIL import Image, ImageDraw, ImageFont


def make_pdf(pages: list[str]) -> bytes:
    """A PDF with one page per text (an empty text gives a page without a text layer)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 8, text)
        else:
            pdf.rect(20, 20, 100, 60, style="F")  # a drawing, no text
    return bytes(pdf.output())


SCAN_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"


def scan(lines: list[str], size: tuple[int, int] = (1240, 1754)) -> Image.Image:
    """A greyscale "scan" (PIL image; A4 at 150 dpi by default): ``lines`` in black, 30 px
    DejaVu Serif, on white, from 120 px in (a line of over about 60 characters runs off the
    page, and OCR reads a cut line badly)."""
    im = Image.new("L", size, 255)
    draw = ImageDraw.Draw(im)
    font = ImageFont.truetype(SCAN_FONT, 30)
    for i, line in enumerate(lines):
        draw.text((120, 150 + 50 * i), line, font=font, fill=0)
    return im


def scanned_pdf(pages: list[str | list[str]]) -> bytes:
    """A PDF whose pages are text (a ``str``: a text layer) or scans (a list of lines, drawn
    by :func:`scan` into one full-page image: no text layer; ``[]`` is a blank scan)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for page in pages:
        pdf.add_page()
        if isinstance(page, str):
            pdf.multi_cell(0, 8, page)
        else:
            pdf.image(scan(page), x=0, y=0, w=210, h=297)
    return bytes(pdf.output())


def encrypted_pdf(text: str, password: str = "s3cret") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([text]))))
    writer.encrypt(user_password=password, owner_password=password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(blocks: list[tuple[str, str]]) -> bytes:
    """A DOCX of ``(style, text)`` paragraphs; style ``"h1"``.. ``"h3"`` makes headings."""
    import docx

    document = docx.Document()
    for style, text in blocks:
        if style.startswith("h"):
            document.add_heading(text, level=int(style[1:]))
        else:
            document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_bomb(unpacked: int = 300 * 1024 * 1024) -> bytes:
    """A zip named like a DOCX whose document.xml unpacks to ``unpacked`` bytes of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w", force_zip64=True) as f:
            block = b"\0" * (1024 * 1024)
            for _ in range(unpacked // len(block)):
                f.write(block)
    return out.getvalue()


def pdf_bomb(unpacked: int = 200 * 1024 * 1024) -> bytes:
    """A one-page PDF whose content stream inflates to ``unpacked`` bytes of spaces."""
    import zlib

    comp = zlib.compressobj(9)
    block = b" " * (1 << 20)
    data = b"".join(comp.compress(block) for _ in range(unpacked >> 20)) + comp.flush()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data
            + b"\nendstream"]
    return raw_pdf(objs)



def pdf_tripping_pypdf_assert() -> bytes:
    """A one-page PDF (written by hand, its xref offsets right) whose content stream holds an
    array where an operator should be (``(text) /Kids [3 0 R 3 0 R]Tj``): pypdf 7 parses it
    with no reader at hand and fails an ``assert`` (AssertionError, not one of its own
    errors). Found by mutating this file at random."""
    stream = b"BT 20 100 Td (Hello lighthouse keeper) /Kids [3 0 R 3 0 R]Tj ET"
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length 54 >>\nstream\n" + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    return raw_pdf(objs)


def raw_pdf(objs: list[bytes]) -> bytes:
    """A PDF written by hand: ``objs`` are objects 1, 2, ... (1 the catalog), the xref
    offsets computed."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + o + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for o in offsets:
        out.write(b"%010d 00000 n \n" % o)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objs) + 1, xref))
    return out.getvalue()


def stream(data: bytes, extra: bytes = b"") -> bytes:
    """A Flate stream object holding ``data`` (``extra``: more dictionary entries)."""
    import zlib

    packed = zlib.compress(data, 9)
    return (b"<< /Length %d /Filter /FlateDecode %s>>\nstream\n" % (len(packed), extra)
            + packed + b"\nendstream")


def named_image_pdf(names: int, width: int, height: int, pixels: bytes | None = None) -> bytes:
    """One page without text naming one grey Flate image (``width`` x ``height``, zeros
    unless ``pixels`` are given) under ``names`` XObject names, drawing it once."""
    data = pixels if pixels is not None else bytes(width * height)
    xobjects = b" ".join(b"/Im%d 5 0 R" % i for i in range(names))
    return raw_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /XObject << " + xobjects + b" >> >> >>",
        stream(b"q 612 0 0 792 0 0 cm /Im0 Do Q"),
        stream(data, b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace "
                     b"/DeviceGray /BitsPerComponent 8 " % (width, height))])


def shared_content_pdf(pages: int, padding: int) -> bytes:
    """``pages`` pages sharing one content stream: a line of text, then ``padding`` bytes of
    ``q Q`` pairs (nothing drawn, all parsed)."""
    content = b"BT /F1 12 Tf 72 700 Td (The shared harbour page) Tj ET\n" + b"q Q " * (
        padding // 4)
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    return raw_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
        stream(content), b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        *(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
          b"/Resources << /Font << /F1 4 0 R >> >> >>" for _ in range(pages))])
