"""Convert between Ollama wire objects and the chat pipeline (``to_*`` / ``from_*``).

Reasoning goes to ``message.thinking`` (chat) or ``thinking`` (generate), never into the
content; ``think: false`` drops it. Durations are nanoseconds, as in Ollama's responses.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from cove.api.errors import ndjson_error_line
from cove.api.ollama.schemas import ChatBody, GenerateBody
from cove.config import parse_duration
from cove.errors import InvalidRequest
from cove.images import from_base64
from cove.models import capabilities
from cove.models.options import sampling_fields, to_sampling, validate_options
from cove.models.registry import ModelEntry
from cove.pipeline import ChatDelta, ChatDone, ChatMessage, ChatRequest, ChatStream
from cove.structured import ollama_grammar
from cove.tools import ToolCall, ToolCalls, parse_tools

FOREVER = "2318-08-26T00:00:00Z"  # what Ollama reports for a model kept loaded forever


def now_iso(ts: float | None = None) -> str:
    """RFC 3339 UTC time (``2024-01-01T12:00:00.123456Z``)."""
    dt = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return dt.isoformat().replace("+00:00", "Z")


def require_model(ref: str) -> str:
    """Ollama requires a model name.

    Raises:
        InvalidRequest: empty name.
    """
    if not ref:
        raise InvalidRequest("model is required", param="model")
    return ref


def keep_alive(value: Any) -> float | None:
    """``keep_alive`` in seconds (None when absent).

    Raises:
        InvalidRequest: not a number of seconds or a duration string.
    """
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as e:
        raise InvalidRequest(f"invalid keep_alive: {e}", param="keep_alive") from e


def grammar_for(fmt: str | dict[str, Any] | None) -> str | None:
    """GBNF for ``format`` (see :func:`cove.structured.ollama_grammar`)."""
    return ollama_grammar(fmt)


def ollama_response_format(fmt: str | dict[str, Any] | None) -> dict[str, Any]:
    """Ollama's ``format`` in OpenAI's ``response_format`` shape (for remote models):
    ``"json"`` is ``json_object``, a schema is ``json_schema``."""
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "format", "schema": fmt}}
    return {"type": "json_object"}


def _think(value: bool | str | None) -> bool | None:
    if isinstance(value, str):  # "high" / "medium" / "low" (gpt-oss style levels)
        return value.lower() not in ("false", "none", "")
    return value


def _common(body: ChatBody | GenerateBody) -> dict[str, Any]:
    opts = validate_options(body.options)
    params = to_sampling(opts)
    grammar = grammar_for(body.format)
    if grammar is not None:
        params = replace(params, grammar=grammar)
    return {
        "params": params,
        "response_format": ollama_response_format(body.format) if grammar else None,
        "explicit": sampling_fields(opts),
        "num_ctx": opts.get("num_ctx"),
        "keep_alive": keep_alive(body.keep_alive),
        "think": _think(body.think),
    }


def to_chat_request(body: ChatBody) -> ChatRequest:
    """The pipeline request for ``/api/chat``.

    Raises:
        InvalidRequest: tools (not supported yet), bad options, format or keep_alive.
    """
    tools = parse_tools(body.tools) if body.tools else None
    common = _common(body)
    if tools is not None and common["params"].grammar is not None:
        raise InvalidRequest("format cannot be combined with tools", param="format")
    messages = [ChatMessage(m.role, m.content or "",
                            images=_images(m.images, f"messages[{i}].images"),
                            tool_calls=_openai_calls(m.tool_calls))
                for i, m in enumerate(body.messages)]
    return ChatRequest(messages=messages, model=require_model(body.ref), tools=tools, **common)


def _images(images: list[str] | None, param: str) -> list[bytes]:
    """The bytes of Ollama's ``images`` (base64 strings; see :func:`cove.images.from_base64`)."""
    return [from_base64(b, f"{param}[{k}]") for k, b in enumerate(images or [])]


def _openai_calls(calls: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Ollama's ``message.tool_calls`` (``{"function": {"name", "arguments": {...}}}``) in
    OpenAI's shape."""
    if not calls:
        return None
    return [{"type": "function", "function": c.get("function") or {}} for c in calls]


def tool_calls_json(calls: list[ToolCall]) -> list[dict[str, Any]]:
    """Ollama's ``message.tool_calls``: arguments as an object."""
    return [{"function": {"name": c.name, "arguments": json.loads(c.arguments)}}
            for c in calls]


def to_generate_request(body: GenerateBody) -> ChatRequest:
    """The pipeline request for ``/api/generate``: system + the prompt as one user turn,
    rendered with the model's template (the route sends a raw prompt, or a prompt with a
    ``suffix`` to fill in the middle, untemplated instead).

    Raises:
        InvalidRequest: ``template`` or ``context`` (not supported); with ``raw`` or a
            ``suffix``: ``system``, ``images`` or ``think`` (no template to take them, as
            Ollama refuses raw mode with a system prompt); bad options.
    """
    if body.template:
        raise InvalidRequest("a template override is not supported; the model's own chat "
                             "template is used", param="template")
    if body.context:
        raise InvalidRequest("context (token ids of an earlier reply) is not supported; "
                             "send the conversation to /api/chat", param="context")
    if body.raw or body.suffix:
        mode = "raw mode" if body.raw else "fill-in-the-middle (suffix)"
        for name in ("system", "images", "think"):
            if getattr(body, name) not in (None, "", []):
                raise InvalidRequest(f"{mode} does not support {name}: the prompt is not "
                                     "rendered with the chat template", param=name)
    messages = [ChatMessage("system", body.system)] if body.system else []
    messages.append(ChatMessage("user", body.prompt or "", images=_images(body.images, "images")))
    return ChatRequest(messages=messages, model=require_model(body.ref), **_common(body))


class Timer:
    """Ollama's durations (ns): total, load (until admission), prompt eval (until the first
    token), eval (the rest)."""

    def __init__(self) -> None:
        self.start = time.perf_counter_ns()
        self.admitted = self.start
        self.first: int | None = None

    def mark_admitted(self) -> None:
        self.admitted = time.perf_counter_ns()

    def mark_token(self) -> None:
        if self.first is None:
            self.first = time.perf_counter_ns()

    def stats(self, done: ChatDone) -> dict[str, Any]:
        end = time.perf_counter_ns()
        first = self.first or end
        return {
            "total_duration": end - self.start,
            "load_duration": self.admitted - self.start,
            "prompt_eval_count": done.usage.prompt_tokens,
            "prompt_eval_duration": first - self.admitted,
            "eval_count": done.usage.completion_tokens,
            "eval_duration": end - first,
        }


def _piece(chat: bool, model: str, kind: str, text: str) -> dict[str, Any]:
    if chat:
        msg: dict[str, Any] = {"role": "assistant", "content": ""}
        msg["thinking" if kind == "reasoning" else "content"] = text
        return {"model": model, "created_at": now_iso(), "message": msg, "done": False}
    out: dict[str, Any] = {"model": model, "created_at": now_iso(), "response": ""}
    out["thinking" if kind == "reasoning" else "response"] = text
    out["done"] = False
    return out


def final(chat: bool, model: str, done: ChatDone, timer: Timer, content: str = "",
          thinking: str = "") -> dict[str, Any]:
    """The last object of a reply (``done: true`` with stats); non-streamed replies carry the
    whole ``content`` and ``thinking`` here."""
    out: dict[str, Any] = {"model": model, "created_at": now_iso()}
    if chat:
        msg: dict[str, Any] = {"role": "assistant", "content": content}
        if thinking:
            msg["thinking"] = thinking
        out["message"] = msg
    else:
        out["response"] = content
        if thinking:
            out["thinking"] = thinking
    reason = "stop" if done.finish_reason == "tool_calls" else done.finish_reason
    out.update(done=True, done_reason=reason, **timer.stats(done))
    return out


def load_reply(chat: bool, model: str, unloaded: bool) -> dict[str, Any]:
    """Reply to a request without messages/prompt: the model was loaded (or unloaded)."""
    out: dict[str, Any] = {"model": model, "created_at": now_iso()}
    if chat:
        out["message"] = {"role": "assistant", "content": ""}
    else:
        out["response"] = ""
    out.update(done=True, done_reason="unload" if unloaded else "load")
    return out


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False) + "\n"


async def ndjson_stream(stream: ChatStream, *, chat: bool, think: bool | None,
                        timer: Timer) -> AsyncIterator[str]:
    """Ollama's streaming format: one JSON object per line, ``done: false`` pieces carrying
    either content or thinking, then one ``done: true`` object with the stats. A failure
    mid-stream ends it with one ``{"error": ...}`` line."""
    try:
        async for item in stream.items():
            if isinstance(item, ToolCalls):
                msg = {"role": "assistant", "content": "",
                       "tool_calls": tool_calls_json(item.calls)}
                yield _line({"model": stream.model, "created_at": now_iso(), "message": msg,
                             "done": False})
            elif isinstance(item, ChatDelta):
                if item.kind == "reasoning" and think is False:
                    continue
                timer.mark_token()
                yield _line(_piece(chat, stream.model, item.kind, item.text))
            elif isinstance(item, ChatDone):
                yield _line(final(chat, stream.model, item, timer))
    except Exception as e:  # noqa: BLE001 - the stream must end with an error line
        yield ndjson_error_line(e)  # a server error shows only its log reference
    finally:
        stream.cancel()


async def collect(stream: ChatStream, *, chat: bool, think: bool | None,
                  timer: Timer) -> dict[str, Any]:
    """Run to the end; the single reply object of a non-streamed request."""
    parts: dict[str, list[str]] = {"reasoning": [], "content": []}
    done: ChatDone | None = None
    calls: list[ToolCall] = []
    try:
        async for item in stream.items():
            if isinstance(item, ChatDelta):
                timer.mark_token()
                parts[item.kind].append(item.text)
            elif isinstance(item, ToolCalls):
                calls = item.calls
            else:
                done = item
    finally:
        stream.cancel()
    assert done is not None
    thinking = "" if think is False else "".join(parts["reasoning"])
    out = final(chat, stream.model, done, timer, "".join(parts["content"]), thinking)
    if calls:
        out["message"]["tool_calls"] = tool_calls_json(calls)
    return out


# -- model listings ----------------------------------------------------------------------------


def details(entry: ModelEntry) -> dict[str, Any]:
    """Ollama's ``details`` object from GGUF metadata."""
    meta = entry.meta()
    arch = meta.get("architecture", "")
    return {
        "parent_model": entry.parent or "",
        "format": "gguf",
        "family": arch,
        "families": [arch] if arch else None,
        "parameter_size": meta.get("parameter_size", ""),
        "quantization_level": meta.get("quantization", ""),
    }


def tag(entry: ModelEntry) -> dict[str, Any]:
    """One model of ``/api/tags``; ``digest`` is the hex SHA-256 of the weights."""
    return {
        "name": entry.name,
        "model": entry.name,
        "modified_at": now_iso(entry.modified),
        "size": entry.size,
        "digest": entry.sha256().removeprefix("sha256:"),
        "details": details(entry),
    }


REMOTE_DETAILS = {"parent_model": "", "format": "remote", "family": "", "families": None,
                  "parameter_size": "", "quantization_level": ""}


def remote_tag(name: str) -> dict[str, Any]:
    """A remote model (served by a registered backend) in ``/api/tags``: no local weights,
    so ``size`` 0, an empty ``digest`` and ``details.format`` ``remote``."""
    return {"name": name, "model": name, "modified_at": now_iso(time.time()), "size": 0,
            "digest": "", "details": REMOTE_DETAILS}


def remote_show(name: str) -> dict[str, Any]:
    """``/api/show`` of a remote model: what Cove knows without asking the backend (its
    template and metadata stay there); tools and structured output are passed through."""
    return {"license": "", "modelfile": f"# {name} is served by a remote backend\n",
            "parameters": "", "template": "", "details": REMOTE_DETAILS, "model_info": {},
            "capabilities": ["completion", "tools"], "modified_at": now_iso(time.time())}


def parameters_text(options: dict[str, Any]) -> str:
    """Preset options in Modelfile ``PARAMETER`` style, one ``name value`` per line."""
    lines = []
    for name, value in options.items():
        for v in value if isinstance(value, list) else [value]:
            lines.append(f"{name:<30} {json.dumps(v) if isinstance(v, str) else v}")
    return "\n".join(lines)


def show(entry: ModelEntry) -> dict[str, Any]:
    """``/api/show``: metadata, capabilities, template, system prompt, parameters, license."""
    meta = entry.meta()
    info = dict(meta.get("kv", {}))
    if "parameter_count" in meta:
        info["general.parameter_count"] = meta["parameter_count"]
    modelfile = [f"# Modelfile generated by Cove for {entry.name}", f"FROM {entry.path}"]
    if meta.get("chat_template"):
        modelfile.append(f'TEMPLATE """{meta["chat_template"]}"""')
    if entry.system:
        modelfile.append(f'SYSTEM """{entry.system}"""')
    params = parameters_text(entry.options)
    modelfile += [f"PARAMETER {line}" for line in params.splitlines()]
    out: dict[str, Any] = {
        "license": meta.get("license") or "",
        "modelfile": "\n".join(modelfile) + "\n",
        "parameters": params,
        "template": meta.get("chat_template") or "",
        "details": details(entry),
        "model_info": info,
        "capabilities": capabilities.of(meta, entry.projector is not None),
        "modified_at": now_iso(entry.modified),
    }
    if entry.system:
        out["system"] = entry.system
    return out
