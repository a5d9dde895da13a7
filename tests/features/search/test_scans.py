"""Scanned PDF pages (no text layer, one image of text drawn here with Pillow) read by OCR
with RapidOCR and with tesseract, indexed on their page and found by search; the notes without
an OCR engine, for pages with nothing to read, and past the per-document bound; the server
answering a chat while a scan is read."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from cove import ocr
from cove.features.search import scans
from cove.features.search.extract import extract
from tests.conftest import FakeWorld
from tests.features.search.files import scanned_pdf
from tests.features.search.test_routes import new_collection, search, upload
from tests.web.conftest import Site
from tests.web.helpers import Browser

KEEPER = ["The lighthouse keeper logs the tides", "every morning before the ferry docks."]
DOC = scanned_pdf(["Contents: the harbour, the ferry, the lighthouse.", KEEPER])


@pytest.mark.parametrize("engine", ["rapidocr", "tesseract"])
def test_a_scanned_page_is_read_by_ocr_on_its_page(engine: str) -> None:
    got = extract(DOC, "harbour.pdf", engine)
    assert got.pages == 2
    assert [s.page for s in got.sections] == [1, 2]
    assert "lighthouse keeper logs the tides" in " ".join(got.sections[1].text.split())
    assert got.notes == [f"page 2 was read by OCR ({engine})"]


def test_an_uploaded_scan_is_found_on_its_page(fake: FakeWorld, alice: Browser) -> None:
    cid = new_collection(alice, "harbour")
    r = upload(alice, cid, "harbour.pdf", DOC)
    assert r.status_code == 201, r.text
    assert r.json()["notes"] == ["page 2 was read by OCR (rapidocr)"]  # the extra: installed
    hit = search(alice, cid, "when are the tides logged?").json()["results"][0]
    assert (hit["document"], hit["page"]) == ("harbour.pdf", 2)
    assert "tides" in hit["snippet"]


def test_without_an_ocr_engine_the_page_is_only_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def none_installed(engine: str = "auto") -> str:
        raise ocr.OcrUnavailable("no OCR engine is installed")

    monkeypatch.setattr(ocr, "choose", none_installed)
    got = extract(DOC, "harbour.pdf")
    assert [s.page for s in got.sections] == [1]
    assert got.notes == ["page 2 has no text layer (a scan or an image); it was not read"]


def test_pages_with_nothing_to_read() -> None:
    from tests.features.search.files import make_pdf

    blank_scan = extract(scanned_pdf(["Some text.", []]), "blank.pdf", "tesseract")
    assert blank_scan.notes == ["page 2 has no text layer, and OCR (tesseract) found no text in "
                                "its images"]
    drawing = extract(make_pdf(["Some text.", ""]), "drawing.pdf", "tesseract")
    assert drawing.notes == ["page 2 has no text layer and no image for OCR to read"]


def test_an_engine_failing_on_a_picture_is_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(im: Any, engine: str = "auto", psm: int = 3) -> Any:
        raise RuntimeError("onnxruntime: bad input")

    monkeypatch.setattr(ocr, "read_lines", refuse)
    got = extract(DOC, "harbour.pdf", "tesseract")
    assert [s.page for s in got.sections] == [1]
    assert got.notes == ["page 2 has no text layer; OCR (tesseract) failed: RuntimeError"]


def pages_of(data: bytes) -> dict[int, Any]:
    import io

    from pypdf import PdfReader

    return {i + 1: p for i, p in enumerate(PdfReader(io.BytesIO(data)).pages)}


def test_ocr_is_bounded_per_document(monkeypatch: pytest.MonkeyPatch) -> None:
    pages = pages_of(scanned_pdf([KEEPER, ["Second page."], ["Third page."]]))
    monkeypatch.setattr(scans, "MAX_PAGES", 2)
    got = scans.read(pages, "tesseract")
    assert sorted(got.texts) == [1, 2]
    assert got.notes[2] == ("page 3 has no text layer; it was not read by OCR (Cove reads at "
                            "most 2 such pages of a document, for at most 180 s)")
    monkeypatch.setattr(scans, "MAX_PAGES", 50)
    now = [0.0]
    read_one = scans._text

    def slow_text(im: Any, engine: str) -> str:  # each picture's OCR takes 100 s
        now[0] += 100
        return read_one(im, engine)

    monkeypatch.setattr(scans, "_text", slow_text)
    got = scans.read(pages, "tesseract", clock=lambda: now[0])
    assert sorted(got.texts) == [1, 2]  # 100 s after page 1, 200 s after page 2: stop
    assert "it was not read by OCR" in got.notes[2]


def test_the_server_answers_while_a_scan_is_read(site: Site,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The upload's OCR is held at its first page until a guest's chat, sent meanwhile, has
    been answered: were OCR on the event loop, that chat could never be answered."""
    reading, release = threading.Event(), threading.Event()
    text_of_picture = scans._text

    def held(im: Any, engine: str) -> str:
        reading.set()
        assert release.wait(300)
        return text_of_picture(im, engine)

    monkeypatch.setattr(scans, "_text", held)
    got: dict[str, Any] = {}
    with httpx.Client(base_url=site.base_url, timeout=600) as owner, \
            httpx.Client(base_url=site.base_url, timeout=120) as guest:
        b = Browser(owner)  # type: ignore[arg-type]
        assert b.signup("ada@example.org").status_code == 200
        cid = new_collection(b, "harbour")
        upload_thread = threading.Thread(
            target=lambda: got.update(r=upload(b, cid, "harbour.pdf", DOC)))
        upload_thread.start()
        try:
            assert reading.wait(300)
            site.engines["scripted:latest"].enqueue(["Still here."])
            r = guest.post("/web/guest/chat", json={"messages": [
                {"role": "user", "content": "Are you there?"}]})
            assert r.status_code == 200 and "Still here." in r.text
            assert "r" not in got  # the upload is still reading its scan
        finally:
            release.set()
            upload_thread.join(300)
    assert got["r"].status_code == 201, got["r"].text
    assert got["r"].json()["notes"] == ["page 2 was read by OCR (rapidocr)"]


def test_pictures_are_sized_before_they_are_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """One 4,000,000 x 15 px image under 600 names (the page took 340 s when each name was
    decoded first): never decoded, too thin; one over MAX_PIXELS: never decoded either."""
    from tests.features.search.files import named_image_pdf

    decoded: list[Any] = []
    decode = scans._decode
    monkeypatch.setattr(scans, "_decode", lambda x: decoded.append(x) or decode(x))
    thin = scans.read(pages_of(named_image_pdf(600, 4_000_000, 15)), "tesseract")
    assert thin.notes == ["page 1 has no text layer, and none of its images was read by OCR "
                          "(each must be 16 px or more on its shorter side and 64 megapixels "
                          "or less; at most 50 image names a page are looked at)"]
    huge = scans.read(pages_of(named_image_pdf(1, 5_000_000, 16)), "tesseract")
    assert "none of its images was read by OCR" in huge.notes[0]
    assert decoded == []


def test_a_picture_named_many_times_is_decoded_and_read_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.features.search.files import named_image_pdf, scan

    im = scan(KEEPER).convert("L")
    data = named_image_pdf(30, im.width, im.height, im.tobytes())
    decoded: list[Any] = []
    decode = scans._decode
    monkeypatch.setattr(scans, "_decode", lambda x: decoded.append(x) or decode(x))
    got = scans.read(pages_of(data), "tesseract")
    assert len(decoded) == 1
    assert got.notes == ["page 1 was read by OCR (tesseract)"]
    assert "lighthouse keeper" in " ".join(got.texts[1].split())


def test_an_image_that_cannot_be_decoded_says_so() -> None:
    from tests.features.search.files import named_image_pdf

    broken = named_image_pdf(1, 100, 100, b"\x00" * 7)  # 7 bytes for 10,000 pixels
    got = scans.read(pages_of(broken), "tesseract")
    assert got.notes == ["page 1 has no text layer, and its images could not be decoded for "
                         "OCR"]


def test_the_deadline_is_checked_between_a_pages_pictures() -> None:
    pages = pages_of(scanned_pdf([KEEPER]))
    ticks = iter([0.0, 0.0, 200.0] + [300.0] * 100)  # page start, deadline, first picture
    got = scans.read(pages, "tesseract", clock=lambda: next(ticks))
    assert got.texts == {}
    assert got.notes == ["page 1 has no text layer; it was not read by OCR (Cove reads a "
                         "document's pages for at most 180 s)"]
