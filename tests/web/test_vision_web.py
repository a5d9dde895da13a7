"""Images in the web app, in a real browser over the real vision path (the bundled SmolLM2 with
a tiny generated projector): paste and drop as a guest (nothing stored), attach as a signed-in
user (stored with the message, shown again, exported, erased with the conversation)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove.app import create_app
from cove.config import Settings
from cove.models.registry import ModelEntry, ModelRegistry, bundled_model_path
from cove.store.tables import Message, MessageImage
from tests.conftest import free_port
from tests.vision_fixture import png, write_projector
from tests.web.browser import ThreadServer
from tests.web.conftest import Site
from tests.web.test_browser import sign_up

pytestmark = pytest.mark.real_model

RED = png((220, 30, 30), pattern=3)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    registry = ModelRegistry()
    registry.add(ModelEntry("vlm:test", bundled_model_path(), "vision test model",
                            projector=write_projector(tmp_path / "mmproj.gguf")))
    settings = Settings(home=tmp_path / "home", default_model="vlm:test", n_ctx=1024,
                        n_parallel=1)
    app = create_app(settings, registry=registry)
    with ThreadServer(app, free_port()) as server:
        yield Site(server.base_url, {}, app)


def put_image(page: Any, how: str, data: bytes = RED) -> None:
    """Paste or drop ``data`` as a PNG file, as a browser does with a real clipboard or drag."""
    page.evaluate("""([b64, how]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "red.png", { type: "image/png" }));
        if (how === "paste") {
            document.getElementById("input").dispatchEvent(
                new ClipboardEvent("paste",
                                   { clipboardData: dt, bubbles: true, cancelable: true }));
        } else {
            document.getElementById("composer").dispatchEvent(
                new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
        }
    }""", [base64.b64encode(data).decode(), how])
    page.wait_for_selector("#attachments:not([hidden]) img")


def send(page: Any, text: str) -> Any:
    page.fill("#input", text)
    page.click("#send")
    page.wait_for_selector("#send:not([hidden])", timeout=120_000)
    return page.locator(".msg.assistant").last


def test_guest_pastes_an_image_and_gets_an_answer(page: Any, site: Site) -> None:
    put_image(page, "paste")
    answer = send(page, "What is in this picture?")
    assert answer.locator(".body").inner_text().strip()
    assert page.locator(".msg.user").last.locator(".images img").count() == 1
    assert page.locator("#attachments img").count() == 0  # sent, so no longer attached
    put_image(page, "drop")  # a second turn: the first image goes along from the tab's memory
    assert send(page, "And this one?").locator(".body").inner_text().strip()
    assert site.rows(MessageImage) == 0 and site.rows(Message) == 0  # a guest stores nothing
    assert page.locator("#error").is_hidden()


def test_signed_in_image_is_stored_shown_exported_and_erased(page: Any, site: Site,
                                                              tmp_path: Path) -> None:
    sign_up(page)
    picture = tmp_path / "red.png"
    picture.write_bytes(RED)
    page.set_input_files("#attach-input", str(picture))
    page.wait_for_selector("#attachments:not([hidden]) img")
    assert send(page, "Describe it.").locator(".body").inner_text().strip()
    assert site.rows(MessageImage) == 1
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    page.locator("#conversations .title").first.click()
    page.wait_for_selector(".msg.user .images img")
    with page.expect_download() as dl:
        page.evaluate("() => { const a = document.createElement('a'); a.href = '/web/export';"
                      " a.download = 'x.json'; document.body.appendChild(a); a.click(); }")
    exported = json.loads(Path(dl.value.path()).read_text())
    images = [i for c in exported["conversations"] for m in c["messages"] for i in m["images"]]
    assert len(images) == 1 and images[0]["url"].startswith("data:image/png;base64,")
    page.once("dialog", lambda d: d.accept())
    page.locator("#conversations .conv").first.locator("button[data-action='delete'], "
                                                       ".delete").first.click()
    page.wait_for_function("() => !document.querySelector('#conversations .conv')")
    assert site.rows(MessageImage) == 0
