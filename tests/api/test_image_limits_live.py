"""The per-request image limits (``COVE_MAX_IMAGES``, ``COVE_IMAGE_MAX_TOTAL_PIXELS``) on every
chat API, for real: ``cove serve`` with the tiny vision model of :mod:`tests.api.test_vision_live`
and low limits, driven by the official ``openai``, ``ollama`` and ``anthropic`` clients. Each
refusal is a 400 in the API's own shape, comes before any image is decoded (the images sent
are not images at all, or truncated after their header, so a decode would answer otherwise),
and the server goes on serving."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import ollama
import openai
import pytest

from tests.api.test_vision_live import VLM, data_url, home  # noqa: F401  (home: a fixture)
from tests.conftest import LiveServer, free_port, server_env, start_server, stop_server
from tests.vision_fixture import png

pytestmark = pytest.mark.real_model

MAX_IMAGES = 3
MAX_PIXELS = 10_000  # in all; a 48x40 test image has 1,920
JUNK = b"not an image at all"  # refused as such only if it were decoded
BIG = png((200, 10, 10), size=(80, 80), pattern=3)  # 6,400 pixels
HALF_BIG = BIG[:len(BIG) // 2]  # its header whole, its pixels cut: decoding it fails


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[LiveServer]:  # noqa: F811
    port = free_port()
    proc = start_server(home, port, COVE_MAX_IMAGES=str(MAX_IMAGES),
                        COVE_IMAGE_MAX_TOTAL_PIXELS=str(MAX_PIXELS))
    yield LiveServer(f"http://127.0.0.1:{port}", proc,
                     server_env(home, COVE_MAX_IMAGES=str(MAX_IMAGES)))
    stop_server(proc)


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0,
                         timeout=120)


def parts(*images: bytes) -> list[dict[str, Any]]:
    return [{"type": "text", "text": "What is this?"},
            *({"type": "image_url", "image_url": {"url": data_url(i)}} for i in images)]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_openai_chat_counts_the_whole_conversation(oai: openai.OpenAI) -> None:
    # two images in an earlier turn, two in this one: 4 > 3, refused before the junk is read
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model=VLM, max_tokens=4, messages=[
            {"role": "user", "content": parts(JUNK, JUNK)},  # type: ignore[misc]
            {"role": "assistant", "content": "Two pictures."},
            {"role": "user", "content": parts(JUNK, JUNK)}])  # type: ignore[misc]
    assert e.value.status_code == 400
    error = e.value.body
    assert isinstance(error, dict)
    assert error["code"] == "too_many_images" and error["param"] == "messages"
    assert error["type"] == "invalid_request_error"
    assert "4 images" in error["message"] and "limit of 3" in error["message"]


def test_openai_chat_pixel_budget_is_read_from_headers(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:  # 2 x 6,400 > 10,000
        oai.chat.completions.create(model=VLM, max_tokens=4, messages=[
            {"role": "user", "content": parts(HALF_BIG, HALF_BIG)}])  # type: ignore[misc]
    error = e.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"]) == ("too_many_images", "messages")
    assert "10,000 pixels in all" in error["message"]
    # within both limits: three small images are read and answered
    r = oai.chat.completions.create(model=VLM, max_tokens=4, temperature=0, messages=[
        {"role": "user", "content": parts(png((1, 2, 3)), png((4, 5, 6)),  # type: ignore[misc]
                                          png((7, 8, 9)))}])
    assert r.choices and r.usage and r.usage.prompt_tokens > 3 * 16


def test_openai_responses_names_input(oai: openai.OpenAI) -> None:
    image: Any = {"type": "input_image", "image_url": data_url(JUNK)}
    with pytest.raises(openai.BadRequestError) as e:
        oai.responses.create(model=VLM, max_output_tokens=4, store=False, input=[
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"},
                                         image, image, image, image]}])
    error = e.value.body
    assert e.value.status_code == 400 and isinstance(error, dict)
    assert (error["code"], error["param"]) == ("too_many_images", "input")


def test_ollama_chat_and_generate(server: LiveServer) -> None:
    client = ollama.Client(host=server.base_url, timeout=120)
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model=VLM, messages=[
            {"role": "user", "content": "a", "images": [b64(JUNK), b64(JUNK)]},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c", "images": [b64(JUNK), b64(JUNK)]}])
    assert e.value.status_code == 400
    assert "4 images" in e.value.error and "COVE_MAX_IMAGES" in e.value.error
    with pytest.raises(ollama.ResponseError) as g:
        client.generate(model=VLM, prompt="Describe.", images=[b64(JUNK)] * 4)
    assert g.value.status_code == 400 and "limit of 3" in g.value.error
    with pytest.raises(ollama.ResponseError) as p:
        client.generate(model=VLM, prompt="Describe.", images=[b64(HALF_BIG)] * 2)
    assert p.value.status_code == 400 and "pixels in all" in p.value.error


def test_anthropic_image_blocks(server: LiveServer) -> None:
    client = anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0,
                                 timeout=120)
    block: Any = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                              "data": b64(JUNK)}}
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=VLM, max_tokens=8, messages=[
            {"role": "user", "content": [block, block, block, block,
                                         {"type": "text", "text": "Hi"}]}])
    assert e.value.status_code == 400
    body = e.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("messages: the request carries 4 images")


def test_server_keeps_serving(oai: openai.OpenAI, server: LiveServer) -> None:
    for _ in range(3):
        with pytest.raises(openai.BadRequestError):
            oai.chat.completions.create(model=VLM, max_tokens=4, messages=[
                {"role": "user", "content": parts(*[JUNK] * 50)}])  # type: ignore[misc]
    assert server.proc.poll() is None
    r = oai.chat.completions.create(model=VLM, max_tokens=2, messages=[
        {"role": "user", "content": "Hi"}])
    assert r.choices
