"""File formats to sections, and bad input refused with clear errors."""

from __future__ import annotations

import pytest

from cove.errors import InvalidRequest, PayloadTooLarge
from cove.features.search.extract import extract, html_sections, markdown_sections
from cove.features.search.service import prepare
from tests.features.search.files import (
    docx_bomb,
    encrypted_pdf,
    make_docx,
    make_pdf,
    pdf_bomb,
    pdf_tripping_pypdf_assert,
)


def code_of(data: bytes, name: str) -> str | None:
    with pytest.raises(InvalidRequest) as e:
        extract(data, name)
    return e.value.code


def test_markdown_split_at_headings_with_paths_not_inside_code() -> None:
    text = ("intro\n# Guide\nstart\n## Install\nrun it\n```\n# not a heading\n```\n"
            "### Linux\napt\n# Other\nend\n")
    got = [(s.heading, s.text.strip().splitlines()[-1]) for s in markdown_sections(text)]
    assert got == [((), "intro"), (("Guide",), "start"), (("Guide", "Install"), "```"),
                   (("Guide", "Install", "Linux"), "apt"), (("Other",), "end")]


def test_markdown_chunks_keep_ranges_in_the_file() -> None:
    text = "# A\n\nalpha text\n\n## B\n\nbeta text\n"
    p = prepare("notes.md", text.encode(), 10**6)
    for c in p.chunks:
        assert text[c["start"]:c["end"]] == c["text"]
    assert [c["heading"] for c in p.chunks] == ["A", "A > B"]


def test_html_drops_scripts_and_styles_and_keeps_headings() -> None:
    page = ("<html><head><title>T</title><style>body{color:red}</style>"
            "<script>alert('x')</script></head><body><h1>Top</h1><p>One &amp; two.</p>"
            "<h2>Sub</h2><p>Three<script>var s=1;</script> four.</p></body></html>")
    sections = html_sections(page)
    joined = " ".join(s.text for s in sections)
    assert "alert" not in joined and "color" not in joined and "var s" not in joined
    assert [(s.heading, s.text.splitlines()[-1]) for s in sections] == [
        (("Top",), "One & two."), (("Top", "Sub"), "Three four.")]


def test_pdf_text_per_page_and_pages_without_text_reported() -> None:
    data = make_pdf(["The heron waits by the river.", "", "Kingfishers dive for fish."])
    got = extract(data, "birds.pdf")
    assert got.kind == "pdf" and got.pages == 3
    assert [(s.page, "heron" in s.text or "Kingfishers" in s.text) for s in got.sections] == [
        (1, True), (3, True)]
    # a drawing, no picture: nothing for OCR (installed here) to read (see test_scans.py)
    assert got.notes == ["page 2 has no text layer and no image for OCR to read"]


def test_docx_heading_path() -> None:
    data = make_docx([("h1", "Manual"), ("p", "Welcome."), ("h2", "Setup"),
                      ("p", "Plug it in."), ("h1", "Appendix"), ("p", "Notes.")])
    got = extract(data, "manual.docx")
    assert [(s.heading, s.text.splitlines()[-1]) for s in got.sections] == [
        (("Manual",), "Welcome."), (("Manual", "Setup"), "Plug it in."),
        (("Appendix",), "Notes.")]


def test_lying_types_and_unknown_types() -> None:
    assert code_of(b"just some text", "report.pdf") == "unsupported_file"
    assert code_of(b"just some text", "letter.docx") == "unsupported_file"
    assert code_of(make_pdf(["x"]), "notes.txt") == "unsupported_file"
    assert code_of(b"\x00\x01\x02binary", "data.txt") == "unsupported_file"
    assert code_of(b"\xff\xfa latin-1 \xe9", "old.md") == "unsupported_file"
    assert code_of(b"MZ", "program.exe") == "unsupported_file"
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "hi")
    assert code_of(buf.getvalue(), "fake.docx") == "unsupported_file"


def test_corrupt_and_encrypted_pdfs() -> None:
    good = make_pdf(["Some text here."])
    assert code_of(good[: len(good) // 3], "cut.pdf") == "unreadable_file"
    assert code_of(b"%PDF-1.7\n" + b"garbage " * 100, "junk.pdf") == "unreadable_file"
    with pytest.raises(InvalidRequest, match="encrypted"):
        extract(encrypted_pdf("Secret plans."), "locked.pdf")


def test_a_pdf_that_trips_an_assert_inside_pypdf_is_unreadable_not_500() -> None:
    # pypdf raised AssertionError (none of the types caught): the upload was a 500
    assert code_of(pdf_tripping_pypdf_assert(), "odd.pdf") == "unreadable_file"


def test_docx_zip_bomb_refused() -> None:
    bomb = docx_bomb()
    assert len(bomb) < 2 * 1024 * 1024
    with pytest.raises(InvalidRequest, match="zip bomb"):
        extract(bomb, "bomb.docx")


def test_pdf_inflate_bomb_is_bounded() -> None:
    """pypdf caps what one stream may inflate to, so a 200 kB file cannot become 200 MB."""
    with pytest.raises(InvalidRequest) as e:
        prepare("bomb.pdf", pdf_bomb(), 10**6)
    assert e.value.code in ("empty_file", "unreadable_file")


def test_size_limit_and_empty_documents() -> None:
    with pytest.raises(PayloadTooLarge, match="COVE_MAX_UPLOAD_BYTES"):
        prepare("big.txt", b"a" * 2000, 1000)
    with pytest.raises(InvalidRequest) as e:
        prepare("blank.pdf", make_pdf([""]), 10**6)
    assert e.value.code == "empty_file" and "no text layer" in e.value.message


def test_a_content_stream_shared_by_pages_counts_on_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three pages sharing one stream of ``q Q`` (5 MB of it took pypdf 18 s): the stream
    counts on every page, and the pages past the document's bound are not read."""
    from cove.features.search import extract as module
    from tests.features.search.files import shared_content_pdf

    data = shared_content_pdf(3, 100_000)
    whole = extract(data, "harbour.pdf")
    assert [s.page for s in whole.sections] == [1, 2, 3] and whole.notes == []
    monkeypatch.setattr(module, "PDF_MAX_DOCUMENT_BYTES", 250_000)
    got = extract(data, "harbour.pdf")
    assert [s.page for s in got.sections] == [1, 2]
    assert "The shared harbour page" in got.sections[1].text
    assert got.notes == ["page 3 was not read: the document's pages are over 0.238 MB of content "
                         "decoded (Cove's bound a document)"]
    monkeypatch.setattr(module, "PDF_MAX_PAGE_BYTES", 50_000)
    assert code_of(data, "harbour.pdf") == "unreadable_file"  # no page read at all


def test_pdf_text_stops_at_its_deadline() -> None:
    from cove.features.search.extract import pdf
    from tests.features.search.files import shared_content_pdf

    ticks = iter(range(0, 10**6, 100))  # every clock reading 100 s after the last
    got = pdf(shared_content_pdf(3, 1000), "harbour.pdf", clock=lambda: float(next(ticks)))
    assert [s.page for s in got.sections] == [1]  # page 1 at 100 s, page 2 at 200 s: stop
    assert got.notes == [f"page {n} was not read: Cove reads a PDF's text for at most 180 s"
                         for n in (2, 3)]
