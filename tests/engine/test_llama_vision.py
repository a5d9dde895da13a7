"""The real vision path: the bundled SmolLM2 with a tiny generated projector (libmtmd), through
the chat pipeline and the scheduler."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove.chat import ChatMessage, ChatRequest, ChatResult
from cove.config import Settings
from cove.engine.types import SamplingParams
from cove.errors import InvalidRequest
from cove.models.registry import ModelEntry, ModelRegistry, bundled_model_path
from cove.pipeline import ChatPipeline
from tests.vision_fixture import N_TOKENS, png, write_projector

pytestmark = pytest.mark.real_model

VLM = "vlm:test"
GREEDY = SamplingParams(max_tokens=12, temperature=0)
RED = png((220, 30, 30), pattern=3)
BLUE = png((20, 40, 230), pattern=5)


@pytest.fixture(scope="module")
def projector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_projector(tmp_path_factory.mktemp("proj") / "mmproj-test.gguf")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, projector: Path) -> Iterator[ChatPipeline]:
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, n_ctx=1024, n_parallel=4, n_threads=2, n_batch=256,
                        prompt_cache_mb=0)
    registry = ModelRegistry()
    registry.add(ModelEntry(VLM, bundled_model_path(), projector=projector))
    pipe = ChatPipeline(settings, registry, embed_loader=None)
    yield pipe
    pipe.close()


def ask(pipe: ChatPipeline, messages: list[ChatMessage], params: SamplingParams = GREEDY,
        model: str = VLM) -> ChatResult:
    async def go() -> ChatResult:
        stream = await pipe.start_chat(ChatRequest(messages, params, model))
        return await stream.collect()
    return asyncio.run(go())


def user(text: str, *images: bytes) -> ChatMessage:
    return ChatMessage("user", text, images=list(images))


def test_image_adds_its_tokens_to_the_prompt(pipeline: ChatPipeline) -> None:
    plain = ask(pipeline, [user("What is in the picture?")]).usage.prompt_tokens
    seen = ask(pipeline, [user("What is in the picture?", RED)]).usage.prompt_tokens
    assert N_TOKENS <= seen - plain <= N_TOKENS + 2  # the rows, and the line after the image


def test_different_images_give_different_greedy_answers(pipeline: ChatPipeline) -> None:
    red = ask(pipeline, [user("Describe it.", RED)]).content
    blue = ask(pipeline, [user("Describe it.", BLUE)]).content
    again = ask(pipeline, [user("Describe it.", RED)]).content
    assert red and blue and red != blue
    assert again == red


def test_follow_up_turn_reuses_the_cells_holding_the_image(pipeline: ChatPipeline) -> None:
    first = ask(pipeline, [user("Look at this.", BLUE)])
    follow = ask(pipeline, [user("Look at this.", BLUE), ChatMessage("assistant", first.content),
                            user("And the colours?")])
    # everything up to the end of the first turn's prompt (the image included) was cached
    assert follow.usage.cached_tokens >= first.usage.prompt_tokens - 1
    green = png((30, 200, 40), pattern=2)  # never seen: its rows must be computed
    other = ask(pipeline, [user("Look at this.", green),
                           ChatMessage("assistant", first.content), user("And the colours?")])
    assert other.usage.cached_tokens < first.usage.prompt_tokens - N_TOKENS


def test_an_image_request_is_batched_with_text_requests(pipeline: ChatPipeline) -> None:
    rt = asyncio.run(pipeline.runtime(VLM))
    eng: Any = rt.engine
    mixed: list[int] = []
    real = eng.decode

    def spy(feeds: list[tuple[int, list[int], bool]]) -> None:
        if len(feeds) > 1 and any(t < 0 for _, tokens, _ in feeds for t in tokens):
            mixed.append(len(feeds))
        real(feeds)

    eng.decode = spy
    fresh = png((240, 220, 20), pattern=7)  # not cached: its rows are decoded in this test
    try:
        async def go() -> list[ChatResult]:
            params = SamplingParams(max_tokens=24, temperature=0)
            texts = [pipeline.start_chat(ChatRequest([user(f"Count to {n}.")], params, VLM))
                     for n in (3, 4, 5)]
            streams = [await texts[0]]
            streams.append(await pipeline.start_chat(
                ChatRequest([user("What is this?", fresh)], params, VLM)))
            streams += [await t for t in texts[1:]]
            return list(await asyncio.gather(*(s.collect() for s in streams)))
        results = asyncio.run(go())
    finally:
        del eng.decode
    assert all(r.finish_reason in ("stop", "length") and r.usage.completion_tokens
               for r in results)
    assert mixed, "the image rows were never decoded in a step with other sequences"


def test_vision_models_are_listed(pipeline: ChatPipeline) -> None:
    assert pipeline.vision_models() == [VLM]


def test_bad_images_and_text_only_models_are_refused(pipeline: ChatPipeline) -> None:
    with pytest.raises(InvalidRequest, match="not an image"):
        ask(pipeline, [user("What is this?", b"GIF89a not really")])
    with pytest.raises(InvalidRequest, match="smollm2:135m cannot read images"):
        ask(pipeline, [user("What is this?", RED)], model="smollm2:135m")


def test_nothing_reaches_stderr(projector: Path, tmp_path: Path) -> None:
    """libmtmd and clip log the whole prompt by default; Cove silences them (a fresh process,
    so that no earlier test has installed the callbacks)."""
    image = tmp_path / "red.png"
    image.write_bytes(RED)
    script = textwrap.dedent(f"""
        import asyncio
        from pathlib import Path
        from cove.chat import ChatMessage, ChatRequest
        from cove.config import Settings
        from cove.engine.types import SamplingParams
        from cove.models.registry import ModelEntry, ModelRegistry, bundled_model_path
        from cove.pipeline import ChatPipeline

        reg = ModelRegistry()
        reg.add(ModelEntry("vlm:test", bundled_model_path(), projector=Path({str(projector)!r})))
        pipe = ChatPipeline(Settings(home=Path({str(tmp_path)!r}), n_ctx=512, n_parallel=1),
                            reg, embed_loader=None)
        async def go():
            msg = ChatMessage("user", "SECRET-PROMPT", images=[Path({str(image)!r}).read_bytes()])
            s = await pipe.start_chat(ChatRequest([msg], SamplingParams(max_tokens=4), "vlm:test"))
            return await s.collect()
        print(asyncio.run(go()).usage.prompt_tokens)
        pipe.close()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    assert int(done.stdout.decode().split()[-1]) > N_TOKENS
    assert done.stderr == b""


def test_an_image_that_attends_both_ways_is_never_split(pipeline: ChatPipeline,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Gemma 3's image rows attend to each other both ways, so its image is decoded in one
    batch: the engine tells the scheduler where a prefill chunk may end."""
    import io

    from PIL import Image

    eng: Any = asyncio.run(pipeline.runtime(VLM)).engine
    im = Image.open(io.BytesIO(RED)).convert("RGB")
    image = eng.image_tokens(RED, im.tobytes(), im.width, im.height)
    tokens = [1, 2, *image, 3, 4]
    assert eng.cut(tokens, 5) == 5  # causal rows (LLaVA-style): any cut is fine
    monkeypatch.setattr(eng._vision, "non_causal", lambda key: True)
    assert eng.cut(tokens, 5) == 2  # stop before the image
    assert eng.cut(tokens[2:], 5) == N_TOKENS  # the image first: all of it
    assert eng.cut(tokens, 2 + N_TOKENS) == 2 + N_TOKENS  # a cut at its end is fine
