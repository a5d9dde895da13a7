"""``/v1/memes`` on the scripted app (SQLite and PostgreSQL): templates CRUD and isolation
between users, rendering, the gallery (export, account deletion), captions and explain with
scripted answers, and every bad input answering 4xx in OpenAI's error shape."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from cove.features.memes.render import render
from cove.features.memes.store import Meme, MemeTemplate
from cove.features.memes.templates import default_boxes
from tests.conftest import FakeWorld
from tests.features.memes import images
from tests.web.helpers import PASSWORD, Browser, events


def count(fake: FakeWorld, table: Any) -> int:
    with fake.app.state.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def small_photo() -> bytes:
    return images.png(images.background("busy", (400, 300)))


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def error_of(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}, err
    return err  # type: ignore[no-any-return]


def upload(b: Browser, data: bytes, name: str = "mine", boxes: Any = None) -> Any:
    form = {"name": name, **({"boxes": json.dumps(boxes)} if boxes is not None else {})}
    return b.post("/v1/memes/templates", files={"file": ("t.png", data, "image/png")},
                  data=form)


def test_builtins_list_and_render_in_every_format(fake: FakeWorld) -> None:
    got = fake.client.get("/v1/memes/templates").json()
    ids = [t["id"] for t in got["data"]]
    assert ids[:5] == ["top-bottom", "this-vs-that", "four-panel", "labels", "expanding"]
    assert all(t["source"] == "builtin" and t["boxes"] for t in got["data"])
    blank = fake.client.get("/v1/memes/templates/four-panel/image")
    assert blank.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(blank.content)).size == (800, 800)
    one = fake.client.get("/v1/memes/templates/top-bottom").json()
    assert "anchor_x" in one["yaml"] and one["example"]["top"]
    for fmt, pil in (("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")):
        r = fake.client.post("/v1/memes", json={"template": "this-vs-that", "format": fmt,
                                                "text": {"this": "Tabs", "that": "Spaces"}})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == f"image/{fmt}"
        assert Image.open(io.BytesIO(r.content)).format == pil
    listed = fake.client.post("/v1/memes", json={"template": "top-bottom",
                                                 "text": ["Top line", "Bottom line"]})
    assert listed.status_code == 200


def test_render_an_uploaded_image_with_default_boxes(fake: FakeWorld) -> None:
    r = fake.client.post("/v1/memes", json={"image": data_url(small_photo()),
                                            "text": {"top": "Hi", "bottom": "There"}})
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (400, 300)


def test_bad_render_requests_are_4xx(fake: FakeWorld) -> None:
    c = fake.client
    err = error_of(c.post("/v1/memes", json={"template": "nope", "text": {}}), 404)
    assert err["param"] == "template"
    err = error_of(c.post("/v1/memes", json={"template": "top-bottom",
                                             "text": {"middle": "x"}}), 400)
    assert err["param"] == "text.middle"
    err = error_of(c.post("/v1/memes", json={"template": "four-panel", "text": {
        "panel_1": "word " * 55}}), 400)
    assert err["code"] == "text_does_not_fit" and err["param"] == "text.panel_1"
    err = error_of(c.post("/v1/memes", json={"template": "four-panel", "text": {
        "panel_1": "Supercalifragilisticexpialidocious" * 3}}), 400)
    assert err["code"] == "text_does_not_fit"
    error_of(c.post("/v1/memes", json={"template": "top-bottom", "format": "bmp"}), 400)
    error_of(c.post("/v1/memes", json={"text": {}}), 400)
    err = error_of(c.post("/v1/memes", json={"image": "https://example.org/a.png"}), 400)
    assert err["param"] == "image"
    assert error_of(c.post("/v1/memes", json={"image": data_url(images.SVG)}), 400)[
        "code"] == "invalid_image"
    assert c.get("/health").status_code == 200


BAD_IMAGES = {
    "not an image": b"definitely not an image",
    "truncated": small_photo()[:2000],
    "decompression bomb": images.bomb_png(),
    "50000x50000": images.huge_header_png(),
    "2000 frames": images.many_frames_gif(),
    "svg": images.SVG,
    "empty": b"",
}


@pytest.mark.parametrize("what", sorted(BAD_IMAGES))
def test_bad_images_are_400_on_upload_explain_and_render(fake: FakeWorld, alice: Browser,
                                                         what: str) -> None:
    data = BAD_IMAGES[what]
    err = error_of(upload(alice, data), 400)
    assert err["code"] == "invalid_image" and err["param"] == "file"
    err = error_of(alice.post("/v1/memes/explain",
                              files={"file": ("m.png", data, "image/png")}), 400)
    assert err["code"] == "invalid_image"
    err = error_of(alice.post("/v1/memes/explain", json={"image": data_url(data)}), 400)
    assert err["code"] == "invalid_image"
    assert count(fake, MemeTemplate) == 0
    assert alice.get("/v1/memes/templates").status_code == 200  # still serving


def test_templates_crud_and_isolation(fake: FakeWorld, alice: Browser, bob: Browser) -> None:
    boxes = [{"name": "caption", "anchor_x": 0.05, "anchor_y": 0.7, "scale_x": 0.9,
              "scale_y": 0.25}]
    r = upload(alice, small_photo(), "Holiday", boxes)
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["id"].startswith("user-") and t["source"] == "user" and t["name"] == "Holiday"
    assert [b["name"] for b in t["boxes"]] == ["caption"]
    tid = t["id"]
    assert tid in [x["id"] for x in alice.get("/v1/memes/templates").json()["data"]]
    assert tid not in [x["id"] for x in bob.get("/v1/memes/templates").json()["data"]]
    assert alice.get(f"/v1/memes/templates/{tid}/image").status_code == 200
    for r in (bob.get(f"/v1/memes/templates/{tid}"),
              bob.get(f"/v1/memes/templates/{tid}/image"),
              bob.delete(f"/v1/memes/templates/{tid}"),
              bob.post("/v1/memes", json={"template": tid, "text": {"caption": "x"}})):
        assert error_of(r, 404)["code"] == "not_found"
    made = alice.post("/v1/memes", json={"template": tid, "text": {"caption": "Sunny"}})
    assert made.status_code == 200
    default = upload(alice, small_photo(), "Plain").json()
    assert [b["name"] for b in default["boxes"]] == ["top", "bottom"]
    error_of(alice.delete("/v1/memes/templates/top-bottom"), 400)
    assert alice.delete(f"/v1/memes/templates/{tid}").json()["deleted"] is True
    error_of(alice.get(f"/v1/memes/templates/{tid}"), 404)
    bad_boxes = [{"name": "x", "anchor_x": 0.9, "scale_x": 0.5}]
    error_of(upload(alice, small_photo(), "Bad", bad_boxes), 400)


def test_guests_cannot_keep_templates_or_memes(fake: FakeWorld, alice: Browser) -> None:
    guest = fake.client  # no session cookie: a guest of the web app on loopback
    guest.cookies.clear()
    assert guest.get("/v1/memes/templates").status_code == 200
    assert guest.post("/v1/memes", json={"template": "top-bottom",
                                         "text": {"top": "a"}}).status_code == 200
    error_of(upload(Browser(guest), small_photo()), 401)
    error_of(guest.post("/v1/memes", json={"template": "top-bottom", "save": True}), 401)
    error_of(guest.get("/v1/memes"), 401)
    assert count(fake, Meme) == 0
    bad_key = guest.get("/v1/memes/templates", headers={"Authorization": "Bearer cove-nope"})
    error_of(bad_key, 401)


def test_gallery_export_and_account_deletion(fake: FakeWorld, alice: Browser,
                                             bob: Browser) -> None:
    tid = upload(alice, small_photo()).json()["id"]
    r = alice.post("/v1/memes", json={"template": "top-bottom", "save": True,
                                      "text": {"top": "Kept", "bottom": "Forever"}})
    mid = int(r.headers["X-Meme-Id"])
    gallery = alice.get("/v1/memes").json()["data"]
    assert [m["id"] for m in gallery] == [mid] and gallery[0]["text"]["top"] == "Kept"
    assert alice.get(f"/v1/memes/{mid}/image").content == r.content
    assert bob.get("/v1/memes").json()["data"] == []
    error_of(bob.get(f"/v1/memes/{mid}/image"), 404)
    error_of(bob.delete(f"/v1/memes/{mid}"), 404)
    exported = alice.get("/web/export").json()["memes"]
    assert [m["id"] for m in exported["memes"]] == [mid]
    assert exported["memes"][0]["image"].startswith("data:image/png;base64,")
    assert [t["id"] for t in exported["templates"]] == [tid]
    assert bob.get("/web/export").json()["memes"] == {"templates": [], "memes": []}
    second = alice.post("/v1/memes", json={"template": "top-bottom", "save": True,
                                           "text": {"top": "Gone"}}).headers["X-Meme-Id"]
    assert alice.delete(f"/v1/memes/{second}").json()["deleted"] is True
    upload(bob, small_photo())
    bob.post("/v1/memes", json={"template": "top-bottom", "save": True, "text": {"top": "B"}})
    assert count(fake, Meme) == 2 and count(fake, MemeTemplate) == 2
    assert bob.request("DELETE", "/web/account", json={"password": PASSWORD}).status_code == 200
    assert count(fake, Meme) == 1 and count(fake, MemeTemplate) == 1  # alice's are kept


def test_captions_are_json_per_box_rendered_side_by_side(fake: FakeWorld) -> None:
    for top, bottom in (("Me at nine", "Me at five"), ("Coffee", "More coffee")):
        fake.engine.enqueue([json.dumps({"top": top, "bottom": bottom})])
    r = fake.client.post("/v1/memes/captions", json={"template": "top-bottom", "n": 2,
                                                     "idea": "mondays", "seed": 1})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["object"] == "meme.captions" and got["model"] == "scripted:latest"
    assert sorted(v["text"]["top"] for v in got["variants"]) == ["Coffee", "Me at nine"]
    assert all(v["image"].startswith("data:image/png;base64,") for v in got["variants"])
    sheet = Image.open(io.BytesIO(base64.b64decode(got["sheet"].split(",", 1)[1])))
    assert sheet.width > 2 * 800
    tokens, params = fake.engine.history[-1]
    assert "mondays" in bytes(tokens).decode() and "top-kv" in (params.grammar or "")
    error_of(fake.client.post("/v1/memes/captions", json={"template": "top-bottom",
                                                          "idea": " "}), 400)
    error_of(fake.client.post("/v1/memes/captions", json={"template": "top-bottom",
                                                          "idea": "x", "n": 9}), 400)
    error_of(fake.client.post("/v1/memes/captions", json={"template": "nope",
                                                          "idea": "x"}), 404)


def meme_png(text: dict[str, str]) -> bytes:
    return images.png(render(images.background("dark", (600, 450)), default_boxes(), text))


def test_explain_reads_regions_and_streams_the_answer(fake: FakeWorld) -> None:
    fake.engine.enqueue(["It says ", "hello."])
    data = meme_png({"top": "When the build passes", "bottom": "On the first try"})
    r = fake.client.post("/v1/memes/explain", files={"file": ("m.png", data, "image/png")})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["explanation"] == "It says hello."
    assert [x["position"] for x in got["regions"]] == ["top", "bottom"]
    assert got["regions"][0]["text"] == "WHEN THE BUILD PASSES"
    assert "ON THE FIRST TRY" in got["text"]
    assert got["vision"]["description"] is None and "No vision model" in got["vision"]["note"]
    prompt = bytes(fake.engine.history[-1][0]).decode()
    assert '"WHEN THE BUILD PASSES"' in prompt and "no vision model" in prompt
    fake.engine.enqueue(["Stream", "ed"])
    r = fake.client.post("/v1/memes/explain", json={"image": data_url(data), "stream": True})
    evs = events(r.text)
    assert evs[0]["type"] == "start" and evs[0]["regions"][1]["text"] == "ON THE FIRST TRY"
    assert "".join(e["text"] for e in evs if e["type"] == "delta") == "Streamed"
    assert evs[-1]["type"] == "done"


def test_explain_recognises_a_users_template(fake: FakeWorld, alice: Browser) -> None:
    photo = images.background("busy", (400, 300), seed=7)
    tid = upload(alice, images.png(photo), "Busy").json()["id"]
    made = alice.post("/v1/memes", json={"template": tid, "text": {"top": "Same picture",
                                                                   "bottom": "New words"}})
    fake.engine.enqueue(["ok"])
    r = alice.post("/v1/memes/explain", files={"file": ("m.png", made.content, "image/png")})
    got = r.json()
    assert got["template"]["id"] == tid, got["template"]
    assert [x["box_name"] for x in got["regions"]] == ["top", "bottom"]
    fake.engine.enqueue(["ok"])
    builtin = alice.post("/v1/memes", json={"template": "labels", "text": {
        "label_1": "Me", "label_2": "Sleep", "label_3": "Phone", "caption": "Every night"}})
    r = alice.post("/v1/memes/explain", files={"file": ("m.png", builtin.content, "image/png")})
    assert r.json()["template"]["id"] == "labels"
    fake.engine.enqueue(["ok"])
    other = images.png(images.background("busy", (400, 300), seed=99))
    r = alice.post("/v1/memes/explain", files={"file": ("m.png", other, "image/png")})
    assert r.json()["template"] is None


def test_explain_options_are_checked(fake: FakeWorld) -> None:
    data = meme_png({"top": "Hi"})
    error_of(fake.client.post("/v1/memes/explain", json={"image": data_url(data),
                                                         "max_tokens": 0}), 400)
    error_of(fake.client.post("/v1/memes/explain", json={"stream": True}), 400)
    error_of(fake.client.post("/v1/memes/explain", files={"image": ("m.png", data)}), 400)
    err = error_of(fake.client.post("/v1/memes/explain", json={"image": data_url(data),
                                                               "ocr_engine": "magic"}), 400)
    assert err["param"] == "ocr_engine"
    err = error_of(fake.client.post("/v1/memes/explain", json={"image": data_url(data),
                                                               "model": "missing:1b"}), 404)
    assert err["param"] == "model"


@pytest.mark.parametrize("box", [{"color": "notacolor"}, {"stroke": "#12"},
                                 {"color": {"r": 1}}, {"color": "#" + "f" * 100}])
def test_box_colours_pillow_cannot_draw_are_400_not_500(fake: FakeWorld, alice: Browser,
                                                        box: dict[str, Any]) -> None:
    boxes = [{"name": "a", **box}]
    key = next(iter(box))
    r = fake.client.post("/v1/memes", json={"image": data_url(small_photo()), "boxes": boxes,
                                            "text": {"a": "hello"}})
    assert error_of(r, 400)["param"] == f"boxes[0].{key}"
    assert error_of(upload(alice, small_photo(), "bad colour", boxes), 400)["param"] == \
        f"boxes[0].{key}"
    assert count(fake, MemeTemplate) == 0
    ok = fake.client.post("/v1/memes", json={"image": data_url(small_photo()), "text": {
        "top": "fine"}, "boxes": [{"name": "top", "color": "hsl(30, 100%, 50%)",
                                   "stroke": "#102030"}]})
    assert ok.status_code == 200, ok.text
