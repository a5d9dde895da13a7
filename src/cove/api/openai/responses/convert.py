"""Convert a Responses API request into the one pipeline's :class:`ChatRequest`.

Input items (OpenAI's names, ``openai/types/responses/response_input_item.py``) become chat
messages: ``message`` items keep their role (``developer`` is a system message), their text
parts joined by newlines; ``function_call`` items become an assistant turn with ``tool_calls``
(consecutive calls share one turn); ``function_call_output`` items become ``tool`` messages;
``reasoning`` items are kept in the stored context but never sent back into the prompt.
``instructions`` come first as a system message; they are not carried over by
``previous_response_id`` (as in OpenAI's API).

Tools, tool choice, structured output and reasoning controls are mapped onto what
``/v1/chat/completions`` uses (:func:`cove.tools.parse_tools`, :mod:`cove.structured`,
:func:`cove.api.openai.convert.effort_think`), so both routes behave the same.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from pydantic import TypeAdapter, ValidationError

from cove.api.openai.convert import effort_think
from cove.api.openai.responses.schemas import (
    ContentPart,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputItem,
    MessageItem,
    ReasoningItem,
    ResponseCreateRequest,
)
from cove.chat import ChatMessage, ChatRequest
from cove.engine.types import SamplingParams
from cove.errors import InvalidRequest
from cove.images import from_url
from cove.structured import schema_grammar
from cove.tools import ToolSpec, parse_tools

DEFAULT_TEMPERATURE = 0.8
MAX_METADATA = 16
TEXT_PARTS = ("input_text", "output_text")
_ITEM = TypeAdapter(InputItem)


def new_item_id(prefix: str) -> str:
    """An item or response id as OpenAI spells them: ``msg_``, ``fc_``, ``rs_``, ``resp_``
    followed by 48 random hex digits."""
    return f"{prefix}_{secrets.token_hex(24)}"


def _refuse_unsupported(body: ResponseCreateRequest) -> None:
    if body.background:
        raise InvalidRequest("background responses are not supported: omit 'background'",
                             param="background")
    if body.conversation is not None:
        raise InvalidRequest("the Conversations API is not supported: use previous_response_id",
                             param="conversation")
    if body.prompt is not None:
        raise InvalidRequest("prompt templates are not supported: send input and instructions",
                             param="prompt")
    if body.truncation == "auto":
        raise InvalidRequest("truncation 'auto' is not supported: Cove never drops input; a "
                             "prompt too long for the context window is a 400",
                             param="truncation")
    if body.top_logprobs or "message.output_text.logprobs" in (body.include or []):
        raise InvalidRequest("logprobs are not supported", param="top_logprobs"
                             if body.top_logprobs else "include")
    meta = body.metadata or {}
    if len(meta) > MAX_METADATA or any(len(k) > 64 or len(v) > 512 for k, v in meta.items()):
        raise InvalidRequest("metadata holds at most 16 pairs, keys of at most 64 characters "
                             "and values of at most 512", param="metadata")


# -- input items --------------------------------------------------------------------------------


def _param(where: str, loc: tuple[Any, ...]) -> str:
    """``input[2].content[0].type`` from a pydantic location inside one item (union member
    names such as ``message`` or ``list[ContentPart]`` left out)."""
    out = where
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i == 0 and part in ("message", "function_call", "function_call_output",
                                 "reasoning", "other"):
            continue
        elif "[" not in str(part) and part not in ("str", "int"):
            out += f".{part}"
    return out


def _parts(role: str, content: str | list[ContentPart], where: str) -> list[dict[str, Any]]:
    """A message's content as a list of parts (a string becomes one ``input_text`` part, or
    ``output_text`` for the assistant). Raises InvalidRequest for parts Cove cannot use."""
    if isinstance(content, str):
        if role == "assistant":
            return [{"type": "output_text", "text": content, "annotations": []}]
        return [{"type": "input_text", "text": content}]
    out: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        if part.type in TEXT_PARTS:
            if part.text is None:
                raise InvalidRequest(f"a {part.type} part needs 'text'", param=f"{at}.text")
            extra: dict[str, Any] = {"annotations": []} if part.type == "output_text" else {}
            out.append({"type": part.type, "text": part.text, **extra})
        elif part.type == "refusal":
            out.append({"type": "refusal", "refusal": part.refusal or ""})
        elif part.type == "input_image":
            out.append(part.model_dump(exclude_none=True))
        else:
            raise InvalidRequest(f"content part type {part.type!r} is not supported",
                                 param=f"{at}.type")
    return out


def normalize_input(value: str | list[Any]) -> list[dict[str, Any]]:
    """The request's ``input`` as the items Cove stores and lists (``GET
    .../input_items``): each with an ``id``, messages with a list of parts.

    Raises:
        InvalidRequest: a malformed item or part, naming it (``input[1].content[0].type``),
            or an item type Cove does not support (``item_reference``, built-in tool calls).
    """
    if isinstance(value, str):
        value = [{"type": "message", "role": "user", "content": value}]
    items: list[dict[str, Any]] = []
    for i, raw in enumerate(value):
        where = f"input[{i}]"
        try:
            item = _ITEM.validate_python(raw)
        except ValidationError as e:
            err = max(e.errors(), key=lambda x: len(x.get("loc", ())))
            param = _param(where, tuple(err.get("loc", ())))
            raise InvalidRequest(f"invalid value for '{param}': {err.get('msg')}",
                                 param=param) from e
        if isinstance(item, MessageItem):
            items.append({"id": item.id or new_item_id("msg"), "type": "message",
                          "role": item.role, "status": "completed",
                          "content": _parts(item.role, item.content, where)})
        elif isinstance(item, FunctionCallItem):
            items.append({"id": item.id or new_item_id("fc"), "type": "function_call",
                          "call_id": item.call_id, "name": item.name,
                          "arguments": item.arguments, "status": "completed"})
        elif isinstance(item, FunctionCallOutputItem):
            output: Any = item.output if isinstance(item.output, str) else _parts(
                "tool", item.output, where)
            items.append({"id": item.id or new_item_id("fco"), "type": "function_call_output",
                          "call_id": item.call_id, "output": output, "status": "completed"})
        elif isinstance(item, ReasoningItem):
            items.append({"id": item.id or new_item_id("rs"),
                          **item.model_dump(exclude_none=True, exclude={"id"})})
        elif item.type == "item_reference":
            raise InvalidRequest("item_reference is not supported: send previous_response_id, "
                                 "or the items themselves", param=f"{where}.type")
        else:
            raise InvalidRequest(f"input item type {item.type!r} is not supported (Cove runs "
                                 "function tools only)", param=f"{where}.type")
    return items


def _text(parts: Any) -> tuple[str, list[bytes]]:
    """The text of a list of parts joined by newlines, and the bytes of its images
    (``input_image`` parts with a ``data:`` URL in ``image_url``; see
    :func:`cove.images.from_url`)."""
    if isinstance(parts, str):
        return parts, []
    texts = [p.get("text") or p.get("refusal") or "" for p in parts if p["type"] != "input_image"]
    images = []
    for p in parts:
        if p["type"] == "input_image":
            url = p.get("image_url")
            if not isinstance(url, str):
                raise InvalidRequest("input_image needs image_url (a data: URL); file_id is not "
                                     "supported", param="input")
            images.append(from_url(url, "input"))
    return "\n".join(texts), images


def to_messages(items: list[dict[str, Any]]) -> list[ChatMessage]:
    """The chat messages of normalized items (see the module docstring)."""
    out: list[ChatMessage] = []
    for item in items:
        kind = item["type"]
        if kind == "message":
            text, images = _text(item["content"])
            out.append(ChatMessage(item["role"], text, images=images))
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            last = out[-1] if out else None
            if last is not None and last.role == "assistant" and last.tool_calls:
                last.tool_calls.append(call)
            else:
                out.append(ChatMessage("assistant", "", tool_calls=[call]))
        elif kind == "function_call_output":
            text, images = _text(item["output"])
            out.append(ChatMessage("tool", text, images=images, tool_call_id=item["call_id"]))
        # reasoning items: kept in the context, never sent back into the prompt
    return out


# -- tools, structured output, sampling ---------------------------------------------------------


def chat_tools(tools: list[dict[str, Any]] | None, tool_choice: Any,
               parallel: bool | None) -> ToolSpec | None:
    """The pipeline's tools from the Responses API's flat shape (``{"type": "function",
    "name", "description", "parameters", "strict"}``; ``tool_choice`` ``auto``, ``none``,
    ``required`` or ``{"type": "function", "name"}``), checked by
    :func:`cove.tools.parse_tools`.

    Raises:
        InvalidRequest: a tool that is not a function (``tools[i].type``), a malformed one
            (``tools[i].name``, ``tools[i].parameters...``) or a bad ``tool_choice``.
    """
    nested = []
    for i, tool in enumerate(tools or []):
        if tool.get("type") != "function":
            raise InvalidRequest(f"tool type {tool.get('type')!r} is not supported: Cove runs "
                                 "function tools ({\"type\": \"function\", \"name\", "
                                 "\"parameters\"})", param=f"tools[{i}].type")
        fn = {k: tool[k] for k in ("name", "description", "parameters") if k in tool}
        nested.append({"type": "function", "function": fn})
    choice = tool_choice
    if isinstance(tool_choice, dict):
        if tool_choice.get("type") != "function" or not isinstance(tool_choice.get("name"), str):
            raise InvalidRequest("tool_choice must be auto, none, required or {\"type\": "
                                 "\"function\", \"name\": ...}", param="tool_choice")
        choice = {"type": "function", "function": {"name": tool_choice["name"]}}
    try:
        return parse_tools(nested or None, choice, parallel)
    except InvalidRequest as e:
        if e.param and e.param.startswith("tools["):
            e.param = e.param.replace(".function", "", 1)
        raise


def format_grammar(body: ResponseCreateRequest) -> str | None:
    """The grammar of ``text.format`` (None for plain text).

    Raises:
        InvalidRequest: an unsupported schema keyword, naming it (``text.format.schema...``).
    """
    fmt = body.text.format if body.text else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return schema_grammar(None, "text.format")
    if not fmt.name:
        raise InvalidRequest("a json_schema format needs a 'name'", param="text.format.name")
    return schema_grammar(fmt.schema_, "text.format.schema")


def sampling(body: ResponseCreateRequest) -> tuple[SamplingParams, frozenset[str]]:
    """Sampling parameters (llama.cpp defaults where OpenAI has none) and the fields the client
    set (the others take a preset's defaults)."""
    base = SamplingParams()
    params = SamplingParams(
        max_tokens=body.max_output_tokens,
        temperature=DEFAULT_TEMPERATURE if body.temperature is None else body.temperature,
        top_p=base.top_p if body.top_p is None else body.top_p,
        seed=body.seed,
    )
    names = {"max_output_tokens": "max_tokens", "temperature": "temperature",
             "top_p": "top_p", "seed": "seed"}
    return params, frozenset(names[f] for f in body.model_fields_set if f in names)


def to_chat_request(body: ResponseCreateRequest, context: list[dict[str, Any]],
                    items: list[dict[str, Any]]) -> ChatRequest:
    """The pipeline request for ``body``: ``context`` is the stored context of
    ``previous_response_id`` (empty without one), ``items`` the request's own normalized input.

    Raises:
        InvalidRequest: unsupported fields (see :func:`_refuse_unsupported`), no input, tools
            together with a JSON format, or any malformed field.
    """
    _refuse_unsupported(body)
    messages = to_messages(context + items)
    if not any(m.role != "system" and m.role != "developer" for m in messages):
        raise InvalidRequest("input is empty: send a string or at least one message item",
                             param="input")
    if body.instructions:
        messages.insert(0, ChatMessage("developer", body.instructions))
    parallel = False if body.max_tool_calls == 1 else body.parallel_tool_calls
    tools = chat_tools(body.tools, body.tool_choice, parallel)
    params, explicit = sampling(body)
    grammar = format_grammar(body)
    if grammar is not None:
        if tools is not None:
            raise InvalidRequest("a JSON text.format cannot be combined with tools",
                                 param="text.format")
        params = replace(params, grammar=grammar)
    effort = body.reasoning.effort if body.reasoning else None
    return ChatRequest(messages=messages, params=params, model=body.model, explicit=explicit,
                       tools=tools, think=effort_think(effort),
                       reasoning_budget=body.reasoning_budget, images_param="input")
