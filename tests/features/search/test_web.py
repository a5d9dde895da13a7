"""The Knowledge section of the web app in chromium: create a collection, pick files (each
uploads on its own with its status; the same file again is "already in this collection"), see
the documents, search them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.features.search.files import make_pdf
from tests.web.test_browser import sign_up


def test_upload_files_and_search_in_the_browser(page: Any, tmp_path: Path) -> None:
    sign_up(page)
    page.click("#open-settings")
    page.fill("#kb-name", "museum")
    page.click("#kb-create")
    page.wait_for_selector("#kb-open:not([hidden])")
    assert page.text_content("#kb-open-name") == "museum"
    pdf = tmp_path / "museum.pdf"
    pdf.write_bytes(make_pdf(["Opening hours: ten to five.", "",
                              "The lighthouse keeper is Ingrid Solberg."]))
    fake = tmp_path / "fake.pdf"
    fake.write_bytes(b"this is not a pdf")
    page.set_input_files("#kb-files", [str(pdf), str(fake)])
    page.wait_for_selector("#kb-uploads li:nth-child(2)[data-state]")
    rows = page.locator("#kb-uploads li")
    assert rows.nth(0).get_attribute("data-state") == "added"
    assert "added, 2 passages" in rows.nth(0).text_content()
    assert rows.nth(1).get_attribute("data-state") == "failed"
    assert "is not a PDF" in rows.nth(1).text_content()
    page.wait_for_selector("#kb-documents li")
    docs = page.locator("#kb-documents li")
    assert docs.count() == 1 and "museum.pdf (pdf, 3 pages)" in docs.nth(0).text_content()
    assert "page 2 has no text layer" in docs.nth(0).text_content()
    assert "museum (1)" in page.text_content("#kb-collections")
    page.set_input_files("#kb-files", [str(pdf)])  # the same file again: told, not stored
    page.wait_for_selector("#kb-uploads li:nth-child(3)[data-state]")
    assert rows.nth(2).get_attribute("data-state") == "unchanged"
    assert "already in this collection" in rows.nth(2).text_content()
    assert page.locator("#kb-documents li").count() == 1

    page.fill("#kb-query", "who keeps the lighthouse?")
    page.click("#kb-search button")
    page.wait_for_selector(".kb-result")
    first = page.locator(".kb-result").first
    assert first.locator("strong").text_content() == "museum.pdf, page 3"
    assert "Ingrid Solberg" in first.text_content()
