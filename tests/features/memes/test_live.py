"""The real path with the bundled model: ``cove serve`` explaining a rendered meme (JSON and
streamed) and writing caption variants constrained to one field per box, over HTTP; and the
same through ``cove meme explain`` and ``cove meme captions`` in a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cove.features.memes.render import render
from cove.features.memes.templates import default_boxes
from tests.conftest import free_port, start_server, stop_server
from tests.features.memes.images import background, png
from tests.web.helpers import events

pytestmark = pytest.mark.real_model
TEXT = {"top": "When the coffee runs out", "bottom": "Before the deadline"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("memes-home")
    port = free_port()
    proc = start_server(home, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def meme(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("memes") / "meme.png"
    path.write_bytes(png(render(background("busy"), default_boxes(), TEXT)))
    return path


def test_explain_over_http_with_the_bundled_model(server: str, meme: Path) -> None:
    c = httpx.Client(base_url=server, timeout=300)
    r = c.post("/v1/memes/explain", files={"file": ("meme.png", meme.read_bytes())},
               data={"max_tokens": "32", "seed": "1"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["model"] == "smollm2:135m" and got["ocr_engine"] == "rapidocr"
    assert [x["text"] for x in got["regions"]] == [v.upper() for v in TEXT.values()]
    assert got["explanation"].strip() and got["usage"]["completion_tokens"] > 0
    assert got["vision"]["description"] is None
    with c.stream("POST", "/v1/memes/explain", files={"file": ("m.png", meme.read_bytes())},
                  data={"max_tokens": "16", "seed": "2", "stream": "true"}) as s:
        evs = events(s.read().decode())
    assert evs[0]["type"] == "start" and len(evs[0]["regions"]) == 2
    assert any(e["type"] == "delta" for e in evs) and evs[-1]["type"] == "done"


def test_captions_over_http_with_the_bundled_model(server: str) -> None:
    r = httpx.post(server + "/v1/memes/captions", timeout=300, json={
        "template": "this-vs-that", "idea": "cats versus dogs", "n": 2, "seed": 3})
    assert r.status_code == 200, r.text
    variants = r.json()["variants"]
    assert len(variants) == 2
    for v in variants:
        assert set(v["text"]) == {"this", "that"}  # the schema made every box a field
        assert all(isinstance(t, str) for t in v["text"].values())
        assert v["image"] is not None or v["error"]


def cove(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COVE_HOME": str(home), "COVE_N_CTX": "1024"}
    return subprocess.run([sys.executable, "-m", "cove", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def test_cli_explain_and_captions(tmp_path: Path, meme: Path) -> None:
    done = cove(tmp_path, "meme", "explain", str(meme), "--max-tokens", "24", "--seed", "1",
                "--json")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert [x["position"] for x in got["regions"]] == ["top", "bottom"]
    assert got["regions"][1]["text"] == "BEFORE THE DEADLINE" and got["explanation"].strip()
    shown = cove(tmp_path, "meme", "explain", str(meme), "--max-tokens", "8")
    assert shown.returncode == 0 and "[top] WHEN THE COFFEE RUNS OUT" in shown.stdout
    assert "No vision model is installed" in shown.stdout
    sheet = tmp_path / "sheet.png"
    done = cove(tmp_path, "meme", "captions", "top-bottom", "mondays", "-n", "2", "--seed",
                "4", "-o", str(sheet))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x.split(". ", 1)[1]) for x in done.stdout.splitlines()
             if x[:2] in ("1.", "2.")]
    assert len(lines) == 2 and all(set(v) == {"top", "bottom"} for v in lines)
    bad = cove(tmp_path, "meme", "explain", str(tmp_path / "sheet.png.missing"))
    assert bad.returncode != 0 and "cannot read" in bad.stderr
    notimg = tmp_path / "x.png"
    notimg.write_bytes(b"nope")
    bad = cove(tmp_path, "meme", "explain", str(notimg))
    assert bad.returncode != 0 and "not an image" in bad.stderr


def test_cli_explain_with_a_vision_model_describes_the_picture(tmp_path: Path,
                                                                meme: Path) -> None:
    """With a model that has a projector installed (the tests' tiny generated one, on the
    bundled SmolLM2), the picture is described by it through the pipeline's image input."""
    from cove.models.registry import bundled_model_path
    from tests.vision_fixture import write_projector

    projector = write_projector(tmp_path / "mmproj-test.gguf")
    done = cove(tmp_path, "import", str(bundled_model_path()), "seer:test", "--mmproj",
                str(projector))
    assert done.returncode == 0, done.stderr
    done = cove(tmp_path, "meme", "explain", str(meme), "--max-tokens", "8", "--seed", "1",
                "--json")
    assert done.returncode == 0, done.stderr
    vision = json.loads(done.stdout)["vision"]
    assert vision["model"] == "seer:test" and vision["note"] == "Described by seer:test."
    assert isinstance(vision["description"], str)
