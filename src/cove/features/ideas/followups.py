"""Follow-ups on brainstormed ideas: expand one into a plan, combine two into one, a pre-mortem
(Klein 2007, "Performing a project premortem", HBR: imagine it failed, say why), and more ideas
like one (deduplicated against the ideas given). Each is one schema-constrained request
through the chat pipeline; :func:`follow_up` returns ``{"action", "result"}``.
"""

from __future__ import annotations

import json
from typing import Any

from cove.engine.types import SamplingParams
from cove.errors import InvalidRequest
from cove.features.ideas.cluster import Deduper
from cove.features.ideas.prompts import SYSTEM, brief, idea_schema, read_ideas
from cove.pipeline import ChatMessage, ChatPipeline, ChatRequest
from cove.structured import schema_grammar

ACTIONS = ("expand", "combine", "premortem", "more")
_S = {"type": "string"}  # unbounded: see prompts.idea_schema


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": list(props),
            "properties": props}


def _list(n_min: int, n_max: int) -> dict[str, Any]:
    return {"type": "array", "items": _S, "minItems": n_min, "maxItems": n_max}


SCHEMAS: dict[str, dict[str, Any]] = {
    "expand": _obj(title=_S, summary=_S, steps=_list(3, 5), first_step=_S),
    "combine": idea_schema(1),
    "premortem": _obj(failure=_S, causes=_list(3, 3), mitigations=_list(3, 3)),
    "more": idea_schema(3),
}


def _describe(idea: dict[str, Any]) -> str:
    return f"{idea.get('title', '')}: {idea.get('pitch', '')}"


def prompt(action: str, goal: str, constraints: list[str], ideas: list[dict[str, Any]]) -> str:
    """The user message of a follow-up."""
    head = brief(goal, constraints)
    one = _describe(ideas[0])
    if action == "expand":
        return (f"{head}\n\nExpand this idea into a short plan: a summary, 3 to 5 steps and "
                f"the very first step to take tomorrow.\nIdea: {one}")
    if action == "combine":
        return (f"{head}\n\nCombine these two ideas into one new idea that keeps the best of "
                f"both.\nIdea 1: {one}\nIdea 2: {_describe(ideas[1])}")
    if action == "premortem":
        return (f"{head}\n\nPre-mortem: imagine it is a year later and this idea failed. Tell "
                f"the story of the failure in one sentence, three causes, and three ways to "
                f"prevent them.\nIdea: {one}")
    return (f"{head}\n\nGive 3 more ideas in the same spirit as this one, but clearly "
            f"different from it.\nIdea: {one}")


def check_ideas(action: str, ideas: list[dict[str, Any]]) -> None:
    """Raises InvalidRequest: an unknown ``action``, or not the ideas it needs (``combine``
    two, the others one), each with a ``title``."""
    if action not in ACTIONS:
        raise InvalidRequest(f"unknown action {action!r}; expected one of: "
                             f"{', '.join(ACTIONS)}", param="action")
    need = 2 if action == "combine" else 1
    if len(ideas) != need:
        raise InvalidRequest(f"{action} takes {need} idea{'s' if need > 1 else ''}",
                             param="ideas")
    for i, idea in enumerate(ideas):
        if not str(idea.get("title", "")).strip():
            raise InvalidRequest("each idea needs a title", param=f"ideas[{i}].title")


async def follow_up(pipeline: ChatPipeline, action: str, goal: str, ideas: list[dict[str, Any]],
                    *, constraints: list[str] | None = None, model: str | None = None,
                    seed: int | None = None, max_tokens: int = 400,
                    client: str | None = None) -> dict[str, Any]:
    """Run one follow-up. ``result`` is, by action: ``expand`` ``{"title", "summary",
    "steps", "first_step"}``; ``combine`` ``{"title", "pitch", "why"}``; ``premortem``
    ``{"failure", "causes", "mitigations"}``; ``more`` ``{"ideas": [{"title", "pitch",
    "why"}], "duplicates"}`` (ideas repeating the given one dropped, counted). A cut-short or
    unparsable answer gives what could be read (``{}`` at worst).

    Raises:
        InvalidRequest: :func:`check_ideas`, an empty goal. ModelNotFound, Overloaded, ...
    """
    check_ideas(action, ideas)
    if not goal.strip():
        raise InvalidRequest("the goal is empty", param="goal")
    constraints = constraints or []
    params = SamplingParams(max_tokens=max_tokens, temperature=0.8, seed=seed,
                            grammar=schema_grammar(SCHEMAS[action], "schema"))
    messages = [ChatMessage("system", SYSTEM),
                ChatMessage("user", prompt(action, goal, constraints, ideas))]
    stream = await pipeline.start_chat(ChatRequest(
        messages, params, model, frozenset({"max_tokens", "temperature", "seed"}),
        client=client))
    answer = await stream.collect()
    text = answer.content
    result: dict[str, Any]
    if action in ("combine", "more"):
        found = read_ideas(text)
        if action == "combine":
            result = found[0] if found else {}
        else:
            result = await _fresh(found, ideas)
    else:
        try:
            parsed = json.loads(text)
            result = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            result = {}
    return {"action": action, "model": answer.model, "result": result,
            "usage": {"prompt_tokens": answer.usage.prompt_tokens,
                      "completion_tokens": answer.usage.completion_tokens}}


async def _fresh(found: list[dict[str, Any]], given: list[dict[str, Any]]) -> dict[str, Any]:
    """``found`` without the ideas that repeat ``given`` or each other."""
    import asyncio

    from cove.embeddings import embed
    from cove.features.ideas.service import idea_text

    known = [{"title": str(g.get("title", "")), "pitch": str(g.get("pitch", ""))}
             for g in given]
    texts = [idea_text(x) for x in known + found]
    vectors = await asyncio.to_thread(embed, texts)
    dedup = Deduper()
    fresh = []
    for i, (text, v) in enumerate(zip(texts, vectors, strict=True)):
        if dedup.add(text, v) is None and i >= len(known):
            fresh.append(found[i - len(known)])
    return {"ideas": fresh, "duplicates": len(found) - len(fresh)}
