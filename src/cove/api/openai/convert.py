"""Convert between OpenAI wire objects and the chat pipeline (``to_*`` / ``from_*``)."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import replace
from typing import Any

from cove.api.openai.logprobs import chat_logprobs, completion_logprobs
from cove.api.openai.schemas import ChatCompletionRequest, CompletionRequest, Message
from cove.engine.types import SamplingParams, Usage
from cove.errors import InvalidRequest
from cove.images import from_url
from cove.pipeline import ChatMessage, ChatRequest, ChatResult
from cove.structured import openai_grammar
from cove.tools import ToolCall, parse_tools

DEFAULT_TEMPERATURE = 0.8


def _stops(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    if len(stops) > 16:
        raise InvalidRequest("at most 16 stop sequences are supported", param="stop")
    return tuple(s for s in stops if s)


def logprobs_wanted(body: ChatCompletionRequest | CompletionRequest) -> int | None:
    """How many alternatives to report per token (None: no logprobs): chat's
    ``logprobs: true`` with ``top_logprobs`` (default 0), completions' ``logprobs``.

    Raises:
        InvalidRequest: ``top_logprobs`` without ``logprobs: true`` (as OpenAI).
    """
    if isinstance(body, CompletionRequest):
        return body.logprobs
    if body.top_logprobs is not None and not body.logprobs:
        raise InvalidRequest("top_logprobs needs logprobs: true", param="top_logprobs")
    return (body.top_logprobs or 0) if body.logprobs else None


def _logit_bias(value: Any) -> tuple[tuple[int, float], ...]:
    """OpenAI's ``logit_bias`` (``{"<token id>": bias}``, bias -100..100) as pairs.

    Raises:
        InvalidRequest: not an object, a key that is not a token id, a bias out of range.
    """
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise InvalidRequest('logit_bias must be an object {"<token id>": bias}',
                             param="logit_bias")
    out = []
    for key, bias in value.items():
        # a vocabulary has fewer than 10**9 tokens; longer digit strings would only feed
        # int() past Python's 4,300-digit limit (ValueError)
        if not (isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 9):
            raise InvalidRequest(f"logit_bias keys are token ids (digits), not {key[:20]!r}",
                                 param="logit_bias")
        if (isinstance(bias, bool) or not isinstance(bias, int | float)
                or not math.isfinite(bias) or not -100 <= bias <= 100):
            raise InvalidRequest(f"logit_bias for token {key} must be a number from -100 to "
                                 f"100, not {bias!r}", param="logit_bias")
        out.append((int(key), float(bias)))
    return tuple(out)


def to_sampling(body: ChatCompletionRequest | CompletionRequest) -> SamplingParams:
    """Sampling parameters from a request body (llama.cpp defaults where OpenAI has none).

    Raises:
        InvalidRequest: a bad ``logit_bias``, ``top_logprobs`` without ``logprobs``.
    """
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
        logit_bias=_logit_bias(body.logit_bias),
        logprobs=logprobs_wanted(body),
    )


# chat fields Cove cannot honour: refused unless absent or set to what Cove does anyway
_REFUSED = {
    "audio": "audio output is not supported; answers are text",
    "prediction": "predicted outputs are not supported",
    "web_search_options": "web search is not supported (Cove never goes online)",
    "functions": "the deprecated functions are not supported; use tools",
    "function_call": "the deprecated function_call is not supported; use tool_choice",
}


def check_supported(body: ChatCompletionRequest) -> None:
    """Refuse the OpenAI chat fields Cove would otherwise have to ignore.

    Raises:
        InvalidRequest: naming the field (``audio``, ``modalities`` other than text,
            ``prediction``, ``web_search_options``, ``functions``, ``function_call``,
            ``service_tier`` other than auto/default, ``verbosity`` other than medium).
    """
    for name, why in _REFUSED.items():
        if getattr(body, name) is not None:
            raise InvalidRequest(why, param=name)
    if body.modalities is not None and set(body.modalities) - {"text"}:
        raise InvalidRequest("only the text modality is supported", param="modalities")
    if body.service_tier not in (None, "auto", "default"):
        raise InvalidRequest("service_tier must be auto or default: there is one tier here",
                             param="service_tier")
    if body.verbosity not in (None, "medium"):
        raise InvalidRequest("verbosity is not supported (only its default, medium)",
                             param="verbosity")


def _image(value: Any, param: str) -> bytes:
    """The bytes of an ``image_url`` part's value (``{"url": ...}`` or a URL string), which
    must be a ``data:`` URL (see :func:`cove.images.from_url`)."""
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str):
        raise InvalidRequest("image_url needs a url (a data: URL)", param=param)
    return from_url(url, f"{param}.url" if isinstance(value, dict) else param)


def _message(i: int, m: Message) -> ChatMessage:
    if m.content is None or isinstance(m.content, str):
        return ChatMessage(m.role, m.content or "", tool_calls=m.tool_calls,
                           tool_call_id=m.tool_call_id, name=m.name)
    texts: list[str] = []
    images: list[bytes] = []
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
            images.append(_image(part.image_url, f"messages[{i}].content[{j}].image_url"))
        else:
            raise InvalidRequest(
                f"content part type {part.type!r} is not supported",
                param=f"messages[{i}].content[{j}].type",
            )
    return ChatMessage(m.role, "\n".join(texts), images=images, name=m.name)


def to_chat_request(body: ChatCompletionRequest) -> ChatRequest:
    """The pipeline request for a chat completion body.

    Raises:
        InvalidRequest: unsupported features or bad values (tools, structured output,
            content parts, logit_bias, the fields of :func:`check_supported`).
    """
    check_supported(body)
    tools = parse_tools(body.tools, body.tool_choice, body.parallel_tool_calls)
    params = to_sampling(body)
    response_format = None
    if body.response_format is not None:
        response_format = body.response_format.model_dump(exclude_none=True)
        grammar = openai_grammar(response_format)
        if grammar is not None and tools is not None:
            raise InvalidRequest("response_format cannot be combined with tools",
                                 param="response_format")
        if grammar is not None:
            params = replace(params, grammar=grammar)
    messages = [_message(i, m) for i, m in enumerate(body.messages)]
    think, budget = reasoning_controls(body)
    return ChatRequest(messages=messages, params=params, model=body.model,
                       explicit=explicit_fields(body), tools=tools, think=think,
                       reasoning_budget=budget, affinity=body.prompt_cache_key,
                       response_format=response_format if params.grammar else None)


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
        InvalidRequest: a list of several prompts (batch); ``echo`` with ``logprobs`` (the
            prompt's own logprobs are not computed); ``best_of`` below ``n`` or streamed.
    """
    if body.echo and body.logprobs is not None:
        raise InvalidRequest("echo cannot be combined with logprobs: the prompt tokens' "
                             "logprobs are not computed", param="echo")
    if body.best_of is not None and (body.best_of < body.n or body.stream):
        raise InvalidRequest("best_of must be at least n, and cannot be streamed",
                             param="best_of")
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


def total_usage(usages: list[Usage]) -> Usage:
    """The usage of ``n`` answers to one prompt: the prompt counted once (cached: what no
    answer computed), the completion tokens summed."""
    return Usage(usages[0].prompt_tokens, sum(u.completion_tokens for u in usages),
                 min(u.cached_tokens for u in usages))


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def _chat_message(result: ChatResult) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.content}
    if result.tool_calls:
        message["content"] = result.content or None
        message["tool_calls"] = tool_calls_json(result.tool_calls)
    if result.reasoning_budget_exhausted:
        message["reasoning_budget_exhausted"] = True
    if result.reasoning:
        message["reasoning_content"] = result.reasoning
    return message


def from_chat_results(results: list[ChatResult], top_logprobs: int | None) -> dict[str, Any]:
    """A ``chat.completion`` object with one choice per result; ``reasoning_content`` is
    present when the model reasoned, ``logprobs`` when ``top_logprobs`` is not None."""
    return {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": results[0].model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": i,
                "message": _chat_message(r),
                "logprobs": None if top_logprobs is None else chat_logprobs(r.logprobs),
                "finish_reason": r.finish_reason,
            }
            for i, r in enumerate(results)
        ],
        "usage": usage_dict(total_usage([r.usage for r in results])),
    }


def best_of(results: list[ChatResult], n: int) -> list[ChatResult]:
    """The ``n`` results with the highest mean token log-probability, best first (OpenAI's
    ``best_of``); the results must carry logprobs."""
    def score(r: ChatResult) -> float:
        return sum(t.logprob for t in r.logprobs) / len(r.logprobs) if r.logprobs else -1e9
    return sorted(results, key=score, reverse=True)[:n]


def from_completion_results(results: list[ChatResult], prompt: str, echo: bool,
                            logprobs: int | None, usage: Usage | None = None) -> dict[str, Any]:
    """A ``text_completion`` object with one choice per result (``usage``: the total, when
    it includes answers not returned, as with ``best_of``)."""
    return {
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": results[0].model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": i,
                "text": (prompt if echo else "") + r.content,
                "logprobs": None if logprobs is None else completion_logprobs(r.logprobs),
                "finish_reason": r.finish_reason,
            }
            for i, r in enumerate(results)
        ],
        "usage": usage_dict(usage or total_usage([r.usage for r in results])),
    }
