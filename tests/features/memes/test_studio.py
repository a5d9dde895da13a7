"""The Meme studio in chromium (Playwright): from an idea to a downloaded PNG, with the text
edited in place (the download is read back by OCR), saved to a signed-in user's gallery; a
guest's memes are never kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

from cove.features.memes import ocr
from cove.features.memes.layout import regions
from cove.features.memes.store import Meme
from tests.web.conftest import Site
from tests.web.helpers import PASSWORD


def studio(browser: Any, site: Site) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(base_url=site.base_url, accept_downloads=True)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("request", lambda r: r.url.startswith((site.base_url, "data:", "blob:"))
          or problems.append(f"offsite request: {r.url}"))
    return context, pg, problems


def test_idea_to_downloaded_png_and_gallery(browser: Any, site: Site, tmp_path: Path) -> None:
    context, pg, problems = studio(browser, site)
    r = pg.request.post("/web/signup", data={"email": "maker@example.org",
                                             "password": PASSWORD})
    assert r.ok, r.text()
    pg.goto("/")
    pg.click("#open-memes")
    pg.wait_for_selector("body[data-ready='1']")
    pg.click("#templates button[data-id='this-vs-that']")
    assert "This vs that" in pg.inner_text("#picked")
    engine = site.engines["scripted:latest"]
    for this, that in (("Reading docs", "Guessing"), ("Tests", "Hope")):
        engine.enqueue([json.dumps({"this": this, "that": that})])
    pg.fill("#idea", "how developers learn a new tool")
    pg.select_option("#n", "2")
    pg.click("#get-ideas")
    pg.wait_for_selector(".variant >> nth=1")
    assert pg.locator(".variant").count() == 2
    card = pg.locator(".variant").first
    first_text = card.locator("input[data-box='this']").input_value()
    assert first_text in ("Reading docs", "Tests")
    card.locator("input[data-box='this']").fill("Edited in place")
    pg.wait_for_selector(".variant img[src^='blob:']")
    with pg.expect_download() as got:
        card.locator("a[download]").click()
    path = tmp_path / "meme.png"
    got.value.save_as(path)
    im = Image.open(path)
    assert im.format == "PNG" and im.size == (1000, 600)
    assert "EDITED IN PLACE" in [r.text for r in regions(ocr.read(im.convert("RGB")))]
    card.locator("text=Save to gallery").click()
    pg.wait_for_selector("#gallery li")
    assert site.rows(Meme) == 1
    context.close()
    assert problems == []


def test_a_guest_downloads_but_keeps_nothing(browser: Any, site: Site, tmp_path: Path) -> None:
    context, pg, problems = studio(browser, site)
    pg.goto("/memes")
    pg.wait_for_selector("body[data-ready='1']")
    assert "Guest" in pg.inner_text("#who") and pg.locator("#gallery-section").is_hidden()
    pg.click("#blank")
    pg.wait_for_selector(".variant")
    assert pg.locator("text=Save to gallery").count() == 0
    pg.wait_for_selector(".variant img[src^='blob:']")
    with pg.expect_download() as got:
        pg.locator(".variant a[download]").click()
    got.value.save_as(tmp_path / "guest.png")
    assert Image.open(tmp_path / "guest.png").size == (800, 800)
    assert site.rows(Meme) == 0
    context.close()
    assert problems == []


def test_own_image_with_a_box_placed_by_dragging(browser: Any, site: Site,
                                                 tmp_path: Path) -> None:
    from cove.features.memes.store import MemeTemplate
    from tests.features.memes.images import background

    context, pg, problems = studio(browser, site)
    assert pg.request.post("/web/signup", data={"email": "owner@example.org",
                                                "password": PASSWORD}).ok
    photo = tmp_path / "holiday.png"
    background("busy", (600, 400)).save(photo)
    pg.goto("/memes")
    pg.wait_for_selector("body[data-ready='1']")
    pg.set_input_files("#own-image", str(photo))
    pg.wait_for_selector("#placer-img[src^='data:']")
    for _ in range(100):  # until the picture has its size
        box = pg.locator("#placer-img").bounding_box()
        if box and box["height"] > 10:
            break
        pg.wait_for_timeout(50)
    pg.mouse.move(box["x"] + 0.1 * box["width"], box["y"] + 0.6 * box["height"])
    pg.mouse.down()
    pg.mouse.move(box["x"] + 0.9 * box["width"], box["y"] + 0.9 * box["height"], steps=5)
    pg.mouse.up()
    assert pg.locator("#placer-stage .box").count() == 1
    pg.click("#keep-template")
    pg.wait_for_selector("#templates button[aria-pressed='true'][data-id^='user-']")
    assert site.rows(MemeTemplate) == 1
    pg.click("#blank")
    pg.wait_for_selector(".variant input[data-box='box_1']")
    assert pg.locator(".variant input").count() == 1
    pg.locator(".variant input[data-box='box_1']").fill("Sunny days")
    pg.wait_for_selector(".variant img[src^='blob:']")
    context.close()
    assert problems == []
