"""Caption ideas from the chat model: one JSON object per variant, constrained by a JSON
schema with one string field per text box (so every answer parses and fills every box), and
several variants decoded side by side in one batch through the scheduler (the pipeline's
``n`` answers to one prompt share its prefill)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from cove.engine.types import SamplingParams
from cove.errors import InvalidRequest
from cove.features.memes.templates import Template
from cove.pipeline import ChatMessage, ChatPipeline, ChatRequest
from cove.structured import schema_grammar

MAX_VARIANTS = 4
MAX_CAPTION = 80  # characters per box the schema allows
SYSTEM = ("You write short, funny captions for memes. Answer with one JSON object only: one "
          "caption per text box, a few words each, no hashtags.")


def caption_schema(template: Template) -> dict[str, Any]:
    """The JSON schema of one variant: ``{box name: string}`` for every box, all required."""
    return {"type": "object", "additionalProperties": False,
            "required": [b.name for b in template.boxes],
            "properties": {b.name: {"type": "string", "maxLength": MAX_CAPTION}
                           for b in template.boxes}}


def caption_prompt(template: Template, idea: str) -> str:
    """The user message: the template, its boxes, an example and the idea."""
    example = {b.name: template.example.get(b.name, "...") for b in template.boxes}
    return (f"Meme template: {template.name}."
            + (f" {template.description}" if template.description else "")
            + f"\nText boxes: {', '.join(b.name for b in template.boxes)}."
            + f"\nExample: {json.dumps(example)}"
            + f"\nIdea: {idea.strip()}\nWrite captions for this idea.")


def parse_variant(text: str, template: Template) -> dict[str, str]:
    """The captions of one answer (empty strings for boxes the answer lacks)."""
    try:
        data = json.loads(text)
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    return {b.name: " ".join(str(data.get(b.name, "")).split())[:MAX_CAPTION]
            for b in template.boxes}


async def suggest(pipeline: ChatPipeline, template: Template, idea: str, *, n: int = 3,
                  model: str | None = None, temperature: float = 0.9, seed: int | None = None,
                  max_tokens: int | None = None,
                  client: str | None = None) -> tuple[str, list[dict[str, str]]]:
    """``n`` caption variants for ``template`` on ``idea``: (model name, [{box: text}]).

    Raises:
        InvalidRequest: an empty or over-long idea, ``n`` outside 1..4 or above the model's
            slots; and whatever :meth:`ChatPipeline.start_chat_choices` raises.
    """
    if not idea.strip():
        raise InvalidRequest("describe the idea of the meme", param="idea")
    if len(idea) > 2000:
        raise InvalidRequest("the idea is over 2000 characters", param="idea")
    if not 1 <= n <= MAX_VARIANTS:
        raise InvalidRequest(f"n must be between 1 and {MAX_VARIANTS}", param="n")
    grammar = schema_grammar(caption_schema(template), "captions")
    budget = max_tokens or 24 + 30 * len(template.boxes)
    params = SamplingParams(max_tokens=budget, temperature=temperature, seed=seed,
                            grammar=grammar)
    messages = [ChatMessage("system", SYSTEM),
                ChatMessage("user", caption_prompt(template, idea))]
    request = ChatRequest(messages, params, model,
                          frozenset({"max_tokens", "temperature", "seed"}), client=client)
    streams = await pipeline.start_chat_choices(request, n)
    try:
        results = await asyncio.gather(*(s.collect() for s in streams))
    finally:
        for s in streams:
            s.cancel()
    return streams[0].model, [parse_variant(r.content, template) for r in results]
