"""Images on every API, for real: a vision model made of the bundled SmolLM2 and a tiny generated
projector, installed with ``cove import --mmproj``, served by ``cove serve`` and driven by the
official ``openai``, ``ollama`` and ``anthropic`` clients; and ``cove run --image``."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest

from cove.models.registry import bundled_model_path
from tests.conftest import LiveServer, free_port, server_env, start_server, stop_server
from tests.vision_fixture import N_TOKENS, png, write_projector

pytestmark = pytest.mark.real_model

VLM = "vlm:test"
TEXT_ONLY = "smollm2:135m"
RED = png((220, 30, 30), pattern=3)
BLUE = png((20, 40, 230), pattern=5)
SECRET = "ZEBRA-SECRET-QUESTION"


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("vision-home")
    projector = write_projector(home / "mmproj-test.gguf")
    env = {**os.environ, "COVE_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "cove", "import", str(bundled_model_path()),
                           VLM, "--mmproj", str(projector)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"imported '{VLM}'" in done.stdout
    return home


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[LiveServer]:
    port = free_port()
    proc = start_server(home, port, COVE_N_PARALLEL="2", COVE_LOG_LEVEL="info")
    yield LiveServer(f"http://127.0.0.1:{port}", proc, server_env(home))
    stop_server(proc)
    log = (home / "server.log").read_text(errors="replace")
    assert SECRET not in log  # no user text in the log (libmtmd would print the prompt)
    assert "clip" not in log.lower() and "mtmd" not in log.lower()


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0,
                         timeout=120)


def image_message(image: bytes, text: str = f"{SECRET} What is in the picture?") -> Any:
    return [{"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": data_url(image)}}]}]


def test_openai_image_url_adds_the_image_tokens(oai: openai.OpenAI) -> None:
    text_only = oai.chat.completions.create(
        model=VLM, max_tokens=8, temperature=0,
        messages=[{"role": "user", "content": f"{SECRET} What is in the picture?"}])
    seen = oai.chat.completions.create(model=VLM, max_tokens=8, temperature=0,
                                       messages=image_message(RED))
    assert text_only.usage and seen.usage
    assert seen.usage.prompt_tokens - text_only.usage.prompt_tokens >= N_TOKENS
    assert seen.choices[0].message.content


def test_openai_different_images_different_greedy_answers(oai: openai.OpenAI) -> None:
    def answer(image: bytes) -> str:
        r = oai.chat.completions.create(model=VLM, max_tokens=12, temperature=0,
                                        messages=image_message(image))
        return r.choices[0].message.content or ""
    assert answer(RED) != answer(BLUE)


def test_openai_streamed_and_responses_input_image(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(
        model=VLM, max_tokens=6, stream=True, messages=image_message(BLUE),
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    r = oai.responses.create(model=VLM, max_output_tokens=6, store=False, input=[
        {"role": "user", "content": [{"type": "input_text", "text": "What is this?"},
                                     {"type": "input_image", "image_url": data_url(RED)}]}])
    assert r.usage and r.usage.input_tokens > N_TOKENS


@pytest.mark.parametrize(("url", "message"), [
    ("https://example.com/cat.png", "not fetched"),
    ("data:image/png;base64," + base64.b64encode(b"not an image at all").decode(),
     "not an image"),
])
def test_openai_refuses_urls_and_bad_bytes(oai: openai.OpenAI, url: str, message: str) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model=VLM, max_tokens=4, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}]}])
    assert message in str(e.value.body)


def test_text_only_model_names_itself(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model=TEXT_ONLY, max_tokens=4, messages=image_message(RED))
    assert f"{TEXT_ONLY} cannot read images" in str(e.value.body)


def test_vision_capability_is_listed(oai: openai.OpenAI, server: LiveServer) -> None:
    caps = {m.id: getattr(m, "capabilities", None) for m in oai.models.list()}
    assert "vision" in caps[VLM] and "vision" not in caps[TEXT_ONLY]
    client = ollama.Client(host=server.base_url)
    assert "vision" in (client.show(VLM).capabilities or [])
    assert "vision" not in (client.show(TEXT_ONLY).capabilities or [])


def test_ollama_images_on_chat_and_generate(server: LiveServer) -> None:
    client = ollama.Client(host=server.base_url, timeout=120)
    opts = {"num_predict": 8, "temperature": 0}
    r = client.chat(model=VLM, options=opts, messages=[
        {"role": "user", "content": "What is this?", "images": [RED]}])
    plain = client.chat(model=VLM, options=opts,
                        messages=[{"role": "user", "content": "What is this?"}])
    assert r.message.content and r.prompt_eval_count and plain.prompt_eval_count
    assert r.prompt_eval_count - plain.prompt_eval_count >= N_TOKENS
    g = client.generate(model=VLM, prompt="Describe.", images=[BLUE], options=opts)
    assert g.response and g.prompt_eval_count and g.prompt_eval_count > N_TOKENS
    bad = httpx.post(server.base_url + "/api/chat", timeout=60, json={
        "model": VLM, "stream": False,
        "messages": [{"role": "user", "content": "x", "images": ["@@not base64@@"]}]})
    assert bad.status_code == 400 and "base64" in bad.json()["error"]


def test_anthropic_image_blocks(server: LiveServer) -> None:
    client = anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0,
                                 timeout=120)
    block: Any = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                              "data": base64.b64encode(RED).decode()}}
    r = client.messages.create(model=VLM, max_tokens=8, messages=[
        {"role": "user", "content": [block, {"type": "text", "text": "What is this?"}]}])
    # Anthropic counts cached prompt tokens apart (the Ollama test above sent the same prompt)
    assert r.usage.input_tokens + (r.usage.cache_read_input_tokens or 0) > N_TOKENS
    assert "".join(b.text for b in r.content if b.type == "text")
    url_block: Any = {"type": "image", "source": {"type": "url",
                                                  "url": "http://example.com/a.png"}}
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=VLM, max_tokens=8, messages=[
            {"role": "user", "content": [url_block, {"type": "text", "text": "Hi"}]}])
    assert "not fetched" in str(e.value.body)


def test_server_keeps_serving_after_bad_images(server: LiveServer, oai: openai.OpenAI) -> None:
    for data in (b"", b"GIF89a\x01\x00", png((1, 2, 3))[:30]):
        r = httpx.post(server.base_url + "/v1/chat/completions", timeout=60, json={
            "model": VLM, "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": data_url(data)}}]}]})
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert oai.chat.completions.create(model=VLM, max_tokens=2, messages=[
        {"role": "user", "content": "Hi"}]).choices


def test_cove_run_image(home: Path, tmp_path: Path) -> None:
    picture = tmp_path / "red.png"
    picture.write_bytes(RED)
    env = {**os.environ, "COVE_HOME": str(home), "COVE_N_CTX": "1024", "COVE_N_PARALLEL": "1"}
    cmd = [sys.executable, "-m", "cove", "run", "--max-tokens", "6", "--temperature", "0"]
    done = subprocess.run([*cmd, "-m", VLM, "--image", str(picture), "What is this?"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() and not done.stderr
    shown = subprocess.run([sys.executable, "-m", "cove", "show", VLM], env=env,
                           capture_output=True, text=True, timeout=120)
    assert "vision" in shown.stdout
    refused = subprocess.run([*cmd, "-m", TEXT_ONLY, "--image", str(picture), "What?"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and f"{TEXT_ONLY} cannot read images" in refused.stderr
