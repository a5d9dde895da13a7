"""Tool turns in a conversation: the system prompt for models without a tool template, and the
template dicts of assistant tool calls and tool results."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cove.chat import ChatMessage
    from cove.tools.spec import ToolSpec


def with_tool_prompt(messages: list[ChatMessage], spec: ToolSpec) -> list[ChatMessage]:
    """``messages`` with the tools described in the system message (prepended to an existing
    one, else a new one first)."""
    from cove.chat import ChatMessage

    text = spec.describe()
    out = list(messages)
    if out and out[0].role in ("system", "developer"):
        out[0] = ChatMessage(out[0].role, f"{out[0].content}\n\n{text}", out[0].images)
    else:
        out.insert(0, ChatMessage("system", text))
    return out


def template_message(role: str, content: str, tool_calls: list[dict[str, Any]] | None,
                     tool_call_id: str | None) -> dict[str, Any]:
    """The template dict of one message. An assistant turn with tool calls also carries them
    as the JSON text the model was asked to produce (so templates without tool support still
    show the call); ``arguments`` become objects, as Hugging Face tool templates expect."""
    out: dict[str, Any] = {"role": role, "content": content}
    if tool_calls:
        calls = []
        for c in tool_calls:
            fn = c.get("function") or {}
            args = fn.get("arguments")
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except ValueError:
                    pass
            calls.append({"name": fn.get("name"), "arguments": args})
        out["tool_calls"] = [{"id": c.get("id"), "type": "function", "function": call}
                             for c, call in zip(tool_calls, calls, strict=True)]
        if not content:
            out["content"] = json.dumps(calls[0] if len(calls) == 1 else calls,
                                        ensure_ascii=False)
    if tool_call_id:
        out["tool_call_id"] = tool_call_id
    return out
