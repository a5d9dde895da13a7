"""Convert between OpenAI wire objects and the chat pipeline (``to_*`` / ``from_*``)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from cove.api.errors import sse_error_event
from cove.api.openai.schemas import ChatCompletionRequest, CompletionRequest, Message
from cove.engine.types import SamplingParams, Usage
from cove.errors import CoveError, EngineFailure, InvalidRequest
from cove.pipeline import ChatDelta, ChatDone, ChatMessage, ChatRequest, ChatResult, ChatStream
from cove.structured import openai_grammar
from cove.tools import ToolCall, ToolCalls, parse_tools

DEFAULT_TEMPERATURE = 0.8


def _stops(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    if len(stops) > 16:
        raise InvalidRequest("at most 16 stop sequences are supported", param="stop")
    return tuple(s for s in stops if s)


def to_sampling(body: ChatCompletionRequest | CompletionRequest) -> SamplingParams:
    """Sampling parameters from a request body (llama.cpp defaults where OpenAI has none)."""
    if body.logprobs:
        raise InvalidRequest("logprobs are not supported", param="logprobs")
    max_tokens = body.max_tokens
    if isinstance(body, ChatCompletionRequest) and body.max_completion_tokens is not None:
        max_tokens = body.max_completion_tokens
    base = SamplingParams()
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=DEFAULT_TEMPERATURE if body.temperature is None else body.temperature,
        top_p=base.top_p if body.top_p is None else body.top_p,
        top_k=base.top_k if body.top_k is None else body.top_k,
        min_p=base.min_p if body.min_p is None else body.min_p,
        seed=body.seed,
        stop=_stops(body.stop),
        repeat_penalty=base.repeat_penalty if body.repeat_penalty is None else body.repeat_penalty,
        presence_penalty=body.presence_penalty or 0.0,
        frequency_penalty=body.frequency_penalty or 0.0,
    )


def _message(i: int, m: Message) -> ChatMessage:
    if m.content is None or isinstance(m.content, str):
        return ChatMessage(m.role, m.content or "", tool_calls=m.tool_calls,
                           tool_call_id=m.tool_call_id)
    texts: list[str] = []
    images = 0
    for j, part in enumerate(m.content):
        if part.type == "text":
            if part.text is None:
                raise InvalidRequest(
                    "text part needs 'text'", param=f"messages[{i}].content[{j}].text"
                )
            texts.append(part.text)
        elif part.type == "refusal":
            texts.append(part.refusal or "")
        elif part.type in ("image_url", "input_image"):
            images += 1
        else:
            raise InvalidRequest(
                f"content part type {part.type!r} is not supported",
                param=f"messages[{i}].content[{j}].type",
            )
    return ChatMessage(m.role, "\n".join(texts), images=images)


def to_chat_request(body: ChatCompletionRequest) -> ChatRequest:
    """The pipeline request for a chat completion body.

    Raises:
        InvalidRequest: unsupported features (tools, structured output, logprobs, parts).
    """
    tools = parse_tools(body.tools, body.tool_choice, body.parallel_tool_calls)
    params = to_sampling(body)
    if body.response_format is not None:
        grammar = openai_grammar(body.response_format.model_dump(exclude_none=True))
        if grammar is not None and tools is not None:
            raise InvalidRequest("response_format cannot be combined with tools",
                                 param="response_format")
        if grammar is not None:
            params = replace(params, grammar=grammar)
    messages = [_message(i, m) for i, m in enumerate(body.messages)]
    think, budget = reasoning_controls(body)
    return ChatRequest(messages=messages, params=params, model=body.model,
                       explicit=explicit_fields(body), tools=tools, think=think,
                       reasoning_budget=budget)


def reasoning_controls(body: ChatCompletionRequest) -> tuple[bool | None, int | None]:
    """``(think, reasoning budget)`` from DeepSeek's ``thinking``, OpenAI's
    ``reasoning_effort`` (``none``/``minimal`` turn thinking off) and Cove's
    ``reasoning_budget`` / ``thinking.budget_tokens``."""
    think = effort_think(body.reasoning_effort)
    budget = body.reasoning_budget
    if body.thinking is not None:
        # enabled is the default of a reasoning model, and a no-op for others
        think = False if body.thinking.type == "disabled" else None
        budget = body.thinking.budget_tokens or budget
    return think, budget


def effort_think(effort: str | None) -> bool | None:
    """``think`` for OpenAI's reasoning effort (``reasoning_effort``, or ``reasoning.effort`` of
    the Responses API): ``none``/``minimal`` turn thinking off, the others (and None) keep the
    model's default."""
    return False if effort in ("none", "minimal") else None


def tool_calls_json(calls: list[ToolCall]) -> list[dict[str, Any]]:
    """OpenAI's ``message.tool_calls``."""
    return [{"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}} for c in calls]


_FIELDS = {"max_tokens": "max_tokens", "max_completion_tokens": "max_tokens",
           "temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p",
           "seed": "seed", "stop": "stop", "repeat_penalty": "repeat_penalty",
           "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty"}


def explicit_fields(body: ChatCompletionRequest | CompletionRequest) -> frozenset[str]:
    """The :class:`SamplingParams` fields the client set (the rest take a preset's defaults;
    a completions body always sets ``max_tokens``, whose default is 16)."""
    fields = {_FIELDS[f] for f in body.model_fields_set if f in _FIELDS}
    if isinstance(body, CompletionRequest):
        fields.add("max_tokens")
    return frozenset(fields)


def completion_prompt(body: CompletionRequest) -> str:
    """The single prompt string of a completions body.

    Raises:
        InvalidRequest: a list of several prompts (batch) or a suffix.
    """
    if body.suffix:
        raise InvalidRequest("suffix (fill-in-the-middle) is not supported", param="suffix")
    if isinstance(body.prompt, list):
        if len(body.prompt) != 1:
            raise InvalidRequest("exactly one prompt string is supported", param="prompt")
        return body.prompt[0]
    return body.prompt


def usage_dict(usage: Usage) -> dict[str, Any]:
    """OpenAI's ``usage`` object, with ``prompt_tokens_details.cached_tokens``."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def from_chat_result(result: ChatResult) -> dict[str, Any]:
    """A ``chat.completion`` object; ``reasoning_content`` is present when the model reasoned."""
    message: dict[str, Any] = {"role": "assistant", "content": result.content}
    if result.tool_calls:
        message["content"] = result.content or None
        message["tool_calls"] = tool_calls_json(result.tool_calls)
    if result.reasoning_budget_exhausted:
        message["reasoning_budget_exhausted"] = True
    if result.reasoning:
        message["reasoning_content"] = result.reasoning
    return {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": result.finish_reason,
            }
        ],
        "usage": usage_dict(result.usage),
    }


def from_completion_result(result: ChatResult, prompt: str, echo: bool) -> dict[str, Any]:
    """A ``text_completion`` object."""
    return {
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": result.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "text": (prompt if echo else "") + result.content,
                "logprobs": None,
                "finish_reason": result.finish_reason,
            }
        ],
        "usage": usage_dict(result.usage),
    }


def _event(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def sse_stream(
    stream: ChatStream, *, chat: bool, include_usage: bool, echo_prompt: str = ""
) -> AsyncIterator[str]:
    """OpenAI's streaming format: ``data: {chunk}`` events, ``finish_reason`` null until one
    final chunk, an optional usage chunk with ``choices: []``, then ``data: [DONE]``.

    For chat, the first chunk carries ``delta.role``; every later chunk carries either
    ``delta.content`` or ``delta.reasoning_content``. A failure mid-stream ends the stream with
    one error event (OpenAI error object) and no ``[DONE]``.
    """
    cid = new_id("chatcmpl" if chat else "cmpl")
    created = int(time.time())
    obj = "chat.completion.chunk" if chat else "text_completion"

    def chunk(choice: dict[str, Any] | None, usage: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {
            "id": cid,
            "object": obj,
            "created": created,
            "model": stream.model,
            "system_fingerprint": None,
            "choices": [] if choice is None else [choice],
        }
        if include_usage:
            body["usage"] = usage
        return _event(body)

    def choice(delta: dict[str, Any] | str, finish: str | None = None) -> dict[str, Any]:
        if chat:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "text": delta, "logprobs": None, "finish_reason": finish}

    try:
        if chat:
            yield chunk(choice({"role": "assistant", "content": ""}))
        elif echo_prompt:
            yield chunk(choice(echo_prompt))
        async for item in stream.items():
            if isinstance(item, ChatDelta):
                if not chat:
                    yield chunk(choice(item.text))
                elif item.kind == "reasoning":
                    yield chunk(choice({"reasoning_content": item.text}))
                else:
                    yield chunk(choice({"content": item.text}))
            elif isinstance(item, ToolCalls):
                for n, call in enumerate(item.calls):
                    first = {"index": n, "id": call.id, "type": "function",
                             "function": {"name": call.name, "arguments": ""}}
                    yield chunk(choice({"tool_calls": [first]}))
                    rest = {"index": n, "function": {"arguments": call.arguments}}
                    yield chunk(choice({"tool_calls": [rest]}))
            elif isinstance(item, ChatDone):
                final: dict[str, Any] = {}
                if item.reasoning_budget_exhausted and chat:
                    final["reasoning_budget_exhausted"] = True
                yield chunk(choice(final if chat else "", item.finish_reason))
                if include_usage:
                    yield chunk(None, usage_dict(item.usage))
        yield "data: [DONE]\n\n"
    except CoveError as e:
        yield sse_error_event(e)
    except Exception as e:  # noqa: BLE001 - the stream must end with an error event
        yield sse_error_event(EngineFailure(f"generation failed: {type(e).__name__}"))
    finally:
        stream.cancel()
