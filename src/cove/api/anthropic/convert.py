"""Convert between Anthropic Messages API objects and the chat pipeline (``to_*`` / ``from_*``).

Requests (Anthropic's ``POST /v1/messages`` reference):

- ``system`` (a string or text blocks) becomes the system message; a turn's text blocks one
  message (joined by newlines); an assistant turn's ``tool_use`` blocks its tool calls; each
  ``tool_result`` block a ``tool`` message (before the rest of its turn, as Anthropic orders
  them); ``thinking`` / ``redacted_thinking`` blocks of earlier turns are dropped, never sent
  back into the prompt; ``image`` blocks count as images (a 400 for a text-only model). A
  final assistant turn is a prefill: the prompt ends with its text and the answer continues it
  (the response holds only the continuation, as Anthropic's).
- ``tools`` (``name``, ``description``, ``input_schema``) and ``tool_choice`` (``auto``, ``any``,
  ``tool``, ``none``; ``disable_parallel_tool_use``) become the pipeline's tool spec (OpenAI
  shape), so calls are grammar-constrained and parsed by :mod:`cove.tools`.
- ``thinking``: ``disabled`` asks the template not to reason, ``enabled`` with
  ``budget_tokens`` sets the reasoning budget, ``adaptive`` / ``between_tools`` are the
  model's default. ``output_config.format`` (a JSON schema) constrains the answer by grammar.

Responses (streamed by :mod:`cove.api.anthropic.sse`): reasoning becomes a ``thinking`` block
(``signature`` empty: Cove does not sign), content a ``text`` block, tool calls ``tool_use``
blocks (``toolu_…`` ids, ``input`` an object). ``stop_reason``: ``end_turn``,
``stop_sequence`` (with ``stop_sequence``), ``max_tokens``, ``tool_use``.
``usage.input_tokens`` counts the prompt tokens computed for this request and
``cache_read_input_tokens`` those reused from the KV cache (Anthropic's split: the prompt is
their sum).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cove.api.anthropic.schemas import Block, Message, MessagesRequest, Prompt
from cove.chat import check_text
from cove.engine.types import SamplingParams, Usage
from cove.errors import InvalidRequest
from cove.images import from_base64, from_url
from cove.pipeline import ChatMessage, ChatRequest, ChatResult
from cove.structured import schema_grammar
from cove.tools import ToolCall, ToolSpec, parse_tools

DEFAULT_TEMPERATURE = 0.8  # llama.cpp's, as on the OpenAI routes
MAX_STOP_SEQUENCES = 16


def _text(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest("expected a string", param=param)
    check_text(value, param)
    return value


def _system(system: str | list[Block] | None) -> str | None:
    if system is None or isinstance(system, str):
        return None if system is None else _text(system, "system")
    texts = []
    for j, b in enumerate(system):
        if b.type != "text":
            raise InvalidRequest("system blocks must be text blocks", param=f"system[{j}].type")
        texts.append(_text(b.text, f"system[{j}].text"))
    return "\n".join(texts)


def _image(source: Any, where: str) -> bytes:
    """The bytes of an image block's ``source``: ``{"type": "base64", "media_type", "data"}``
    (a ``url`` source is refused: Cove never fetches one)."""
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "url":
        return from_url(str(source.get("url") or ""), f"{where}.url")
    if kind != "base64" or not isinstance(source.get("data"), str):
        raise InvalidRequest("an image block needs a base64 source ({\"type\": \"base64\", "
                             "\"media_type\", \"data\"})", param=where)
    return from_base64(source["data"], f"{where}.data")


def _tool_result(b: Block, where: str) -> ChatMessage:
    """A ``tool_result`` block as a ``tool`` message (``content`` a string or text/image
    blocks; ``is_error`` prefixes the text with ``Error:``)."""
    tool_use_id = _text(b.tool_use_id, f"{where}.tool_use_id")
    texts: list[str] = []
    images: list[bytes] = []
    if isinstance(b.content, str):
        texts.append(_text(b.content, f"{where}.content"))
    elif isinstance(b.content, list):
        for k, part in enumerate(b.content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(_text(part.get("text"), f"{where}.content[{k}].text"))
            elif kind == "image":
                images.append(_image(part.get("source"), f"{where}.content[{k}].source"))
            else:
                raise InvalidRequest("tool_result content blocks must be text or image",
                                     param=f"{where}.content[{k}].type")
    elif b.content is not None:
        raise InvalidRequest("expected a string or a list of blocks", param=f"{where}.content")
    text = "\n".join(texts)
    if b.is_error:
        text = f"Error: {text}"
    return ChatMessage("tool", text, images=images, tool_call_id=tool_use_id)


def _tool_use(b: Block, where: str) -> dict[str, Any]:
    """A ``tool_use`` block as an OpenAI-shaped tool call (the pipeline's history shape)."""
    call_id = _text(b.id, f"{where}.id")
    name = _text(b.name, f"{where}.name")
    if not isinstance(b.input, dict):
        raise InvalidRequest("tool_use input must be an object", param=f"{where}.input")
    arguments = json.dumps(b.input, ensure_ascii=False)
    check_text(arguments, f"{where}.input")
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": arguments}}


def _turn(i: int, m: Message, out: list[ChatMessage], where: list[str]) -> None:
    """Append the pipeline messages of turn ``i`` to ``out``, and to ``where`` the request
    path each of them stands for (for errors the pipeline raises about them)."""
    base = f"messages[{i}]"
    if isinstance(m.content, str):
        out.append(ChatMessage(m.role, _text(m.content, f"{base}.content")))
        where.append(f"{base}.content")
        return
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    images: list[bytes] = []
    results = 0
    first_image: str | None = None
    for j, b in enumerate(m.content):
        path = f"{base}.content[{j}]"
        if b.type == "text":
            texts.append(_text(b.text, f"{path}.text"))
        elif b.type == "image":
            images.append(_image(b.source, f"{path}.source"))
            first_image = first_image or path
        elif b.type in ("thinking", "redacted_thinking") and m.role == "assistant":
            continue  # earlier reasoning is never sent back into the prompt
        elif b.type == "tool_use" and m.role == "assistant":
            calls.append(_tool_use(b, path))
        elif b.type == "tool_result" and m.role == "user":
            out.append(_tool_result(b, path))
            where.append(path)
            results += 1
        else:
            raise InvalidRequest(f"content block type {b.type!r} is not supported in a "
                                 f"{m.role} turn", param=f"{path}.type")
    if texts or calls or images or not results:  # a turn of tool results only adds none
        out.append(ChatMessage(m.role, "\n".join(texts), images=images, tool_calls=calls or None))
        where.append(first_image or f"{base}.content")


def to_messages(body: Prompt) -> tuple[list[ChatMessage], list[str]]:
    """The pipeline messages of a request, and for each the request path it came from.

    Raises:
        InvalidRequest: a block of an unsupported type, a missing or mistyped field, text that
            is not valid Unicode (``param`` names the block).
    """
    messages: list[ChatMessage] = []
    where: list[str] = []
    system = _system(body.system)
    if system is not None:
        messages.append(ChatMessage("system", system))
        where.append("system")
    for i, m in enumerate(body.messages):
        _turn(i, m, messages, where)
    return messages, where


_TOOL_FIELDS = {".function.name": ".name", ".function.description": ".description",
                ".function.parameters": ".input_schema", ".function": ""}


def _tool_choice(choice: Any) -> tuple[Any, bool | None]:
    """Anthropic's ``tool_choice`` as OpenAI's, with ``parallel_tool_calls``."""
    if choice is None:
        return None, None
    if not isinstance(choice, dict):
        choice = {}
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") is True else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}, False
    raise InvalidRequest('tool_choice must be {"type": "auto" | "any" | "none"} or '
                         '{"type": "tool", "name": ...}', param="tool_choice")


def to_tools(tools: Any, tool_choice: Any) -> ToolSpec | None:
    """The pipeline's tool spec for Anthropic's ``tools`` and ``tool_choice`` (None: nothing
    to call).

    Raises:
        InvalidRequest: a malformed tool (naming ``tools[i].name`` / ``.input_schema``), a
            server tool (``tools[i].type``), a bad ``tool_choice``.
    """
    if tools is not None and not isinstance(tools, list):
        raise InvalidRequest("tools must be a list", param="tools")
    functions = []
    for i, t in enumerate(tools or []):
        if not isinstance(t, dict):
            raise InvalidRequest("each tool must be an object", param=f"tools[{i}]")
        if t.get("type") not in (None, "custom"):
            raise InvalidRequest(f"server tool {t.get('type')!r} is not supported: declare "
                                 "client tools (name, description, input_schema)",
                                 param=f"tools[{i}].type")
        schema = t.get("input_schema")
        if not isinstance(schema, dict):
            raise InvalidRequest("a tool needs an input_schema object",
                                 param=f"tools[{i}].input_schema")
        fn = {"name": t.get("name"), "parameters": schema}
        if t.get("description") is not None:
            fn["description"] = t["description"]
        functions.append({"type": "function", "function": fn})
    choice, parallel = _tool_choice(tool_choice)
    try:
        return parse_tools(functions or None, choice, parallel)
    except InvalidRequest as e:
        if e.param:
            e.param = re.sub(r"\.function(\.name|\.description|\.parameters)?",
                             lambda m: _TOOL_FIELDS[m.group(0)], e.param, count=1)
        raise


def _thinking(body: Prompt) -> tuple[bool | None, int | None]:
    if body.thinking is None or body.thinking.type in ("adaptive", "between_tools"):
        return None, None
    if body.thinking.type == "disabled":
        return False, None
    return None, body.thinking.budget_tokens  # enabled: the model's default, with a budget


_FIELDS = {"max_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p",
           "top_k": "top_k", "stop_sequences": "stop"}


def to_sampling(body: MessagesRequest, tools: ToolSpec | None = None) -> SamplingParams:
    """Sampling parameters (llama.cpp's defaults where the request sets none), with the
    grammar of ``output_config.format``.

    Raises:
        InvalidRequest: more than 16 stop sequences; an output format that is not a supported
            JSON schema, or given together with ``tools``.
    """
    grammar = None
    if body.output_config is not None and body.output_config.format is not None:
        if tools is not None:
            raise InvalidRequest("output_config.format cannot be combined with tools",
                                 param="output_config.format")
        grammar = schema_grammar(body.output_config.format.schema_, "output_config.format.schema")
    stops = tuple(s for s in body.stop_sequences or () if s)
    if len(stops) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(f"at most {MAX_STOP_SEQUENCES} stop sequences are supported",
                             param="stop_sequences")
    base = SamplingParams()
    return SamplingParams(
        max_tokens=body.max_tokens,
        temperature=DEFAULT_TEMPERATURE if body.temperature is None else body.temperature,
        top_p=base.top_p if body.top_p is None else body.top_p,
        top_k=base.top_k if body.top_k is None else body.top_k,
        stop=stops,
        grammar=grammar,
    )


def to_chat_request(body: Prompt) -> tuple[ChatRequest, list[str]]:
    """The pipeline request for a messages (or count_tokens) body, and the request path of
    each of its messages (see :func:`request_paths`).

    Raises:
        InvalidRequest: as :func:`to_messages`, :func:`to_tools`, :func:`to_sampling`.
    """
    messages, where = to_messages(body)
    think, budget = _thinking(body)
    tools = to_tools(body.tools, body.tool_choice)
    req = ChatRequest(messages=messages, model=body.model or None, tools=tools, think=think,
                      reasoning_budget=budget)
    if isinstance(body, MessagesRequest):
        req.params = to_sampling(body, tools)
        fmt = body.output_config.format if body.output_config else None
        if fmt is not None:  # for remote models, in OpenAI's shape
            req.response_format = {"type": "json_schema", "json_schema": {
                "name": "output", "schema": fmt.schema_ or {"type": "object"}}}
    last = messages[-1] if messages else None
    if body.messages[-1].role == "assistant" and last and not last.tool_calls:
        if tools is not None or req.params.grammar is not None:
            raise InvalidRequest("a final assistant turn (prefill) cannot be combined with "
                                 "tools or output_config.format",
                                 param=f"messages[{len(body.messages) - 1}]")
        req.prefill = messages.pop().content  # the answer continues this text
        where.pop()
        req.explicit = frozenset(_FIELDS[f] for f in body.model_fields_set if f in _FIELDS)
    return req, where


@contextmanager
def request_paths(where: list[str]) -> Iterator[None]:
    """Rename the ``param`` of an :class:`InvalidRequest` the pipeline raises about its
    ``messages[k]`` to the request path that message came from (``where[k]``, e.g.
    ``messages[2].content[1]`` for an image block); ``think`` becomes ``thinking``."""
    try:
        yield
    except InvalidRequest as e:
        found = re.match(r"messages\[(\d+)\]", e.param or "")
        if found and int(found.group(1)) < len(where):
            e.param = where[int(found.group(1))]
        elif e.param == "think":
            e.param = "thinking"
        raise


def new_id(prefix: str = "msg") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def tool_use_block(call: ToolCall) -> dict[str, Any]:
    """A ``tool_use`` block: ``toolu_…`` id, ``input`` as an object."""
    return {"type": "tool_use", "id": "toolu_" + call.id.removeprefix("call_"),
            "name": call.name, "input": json.loads(call.arguments)}


def stop_reason(finish_reason: str, stop_sequence: str | None) -> str:
    """Anthropic's ``stop_reason`` for the pipeline's finish reason."""
    if finish_reason == "tool_calls":
        return "tool_use"
    if finish_reason == "length":
        return "max_tokens"
    return "stop_sequence" if stop_sequence else "end_turn"


def usage_dict(usage: Usage) -> dict[str, int]:
    """Anthropic's ``usage``: computed prompt tokens, cached ones, and output tokens."""
    return {"input_tokens": usage.prompt_tokens - usage.cached_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": usage.cached_tokens,
            "output_tokens": usage.completion_tokens}


def from_chat_result(result: ChatResult) -> dict[str, Any]:
    """A ``message`` object. With no output at all, ``content`` is one empty text block (so
    clients reading ``content[0].text`` work)."""
    content: list[dict[str, Any]] = []
    if result.reasoning:
        content.append({"type": "thinking", "thinking": result.reasoning, "signature": ""})
    if result.content:
        content.append({"type": "text", "text": result.content})
    content.extend(tool_use_block(c) for c in result.tool_calls)
    reason = stop_reason(result.finish_reason, result.stop_sequence)
    return {
        "id": new_id(),
        "type": "message",
        "role": "assistant",
        "model": result.model,
        "content": content or [{"type": "text", "text": ""}],
        "stop_reason": reason,
        "stop_sequence": result.stop_sequence if reason == "stop_sequence" else None,
        "usage": usage_dict(result.usage),
    }
