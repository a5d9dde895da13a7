"""Does a follow-up turn reuse the KV cells that hold an image? Run once, by hand:

    .venv/bin/python -m bench.vision_reuse

The bundled SmolLM2-135M with a generated projector whose images make 256 tokens (a 224x224
image in 14x14 patches: Gemma 3's count), through the chat pipeline. Three requests, one after
another, each timed to its first answer token: a first turn with an image; the follow-up turn
(the same image and the answer in its history); and the same follow-up with another image (so
nothing past the system prompt can be reused). Prints a markdown table.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from tests.vision_fixture import png, write_projector

from cove.chat import ChatDelta, ChatMessage, ChatRequest
from cove.config import Settings
from cove.engine.types import SamplingParams
from cove.models.registry import ModelEntry, ModelRegistry, bundled_model_path
from cove.pipeline import ChatPipeline


async def first_token(pipe: ChatPipeline,
                      messages: list[ChatMessage]) -> tuple[float, str, int, int]:
    """Seconds to the first answer piece, the answer, prompt and cached tokens."""
    t0 = time.perf_counter()
    stream = await pipe.start_chat(ChatRequest(messages, SamplingParams(max_tokens=8,
                                                                        temperature=0), "vlm"))
    ttft, text, usage = 0.0, "", None
    async for item in stream:
        if isinstance(item, ChatDelta):
            ttft = ttft or time.perf_counter() - t0
            text += item.text
        else:
            usage = item.usage
    assert usage is not None
    return ttft, text, usage.prompt_tokens, usage.cached_tokens


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proj = write_projector(Path(tmp) / "mmproj.gguf", image_size=224, patch=14)
        reg = ModelRegistry()
        reg.add(ModelEntry("vlm:latest", bundled_model_path(), projector=proj))
        pipe = ChatPipeline(Settings(home=Path(tmp), n_ctx=2048, n_parallel=2), reg,
                            embed_loader=None)
        try:
            await first_token(pipe, [ChatMessage("user", "Hi")])  # load the model
            a, b = png((200, 40, 40), (224, 224), 3), png((40, 40, 200), (224, 224), 5)
            turn = [ChatMessage("user", "What is in this picture?", images=[a])]
            rows = [("first turn, new image", *await first_token(pipe, turn))]
            history = [*turn, ChatMessage("assistant", rows[0][2]),
                       ChatMessage("user", "Tell me more.")]
            rows.append(("follow-up, same image", *await first_token(pipe, history)))
            other = [ChatMessage("user", "What is in this picture?", images=[b]), *history[1:]]
            rows.append(("follow-up, other image", *await first_token(pipe, other)))
        finally:
            pipe.close()
    print("| request | time to first token | prompt tokens | cached tokens |")
    print("|---|---|---|---|")
    for name, ttft, _, prompt, cached in rows:
        print(f"| {name} | {ttft * 1000:.0f} ms | {prompt} | {cached} |")


if __name__ == "__main__":
    asyncio.run(main())
