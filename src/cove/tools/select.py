"""Keep a prompt small when a request carries many tools: only the tools most relevant to the
conversation are described to the model (and allowed by the call grammar).

Open WebUI, for one, sends 36 built-in tool definitions (~25 KB, ~6,600 tokens of prompt) with
every chat; a small local model cannot read that in a 4k window, nor quickly in a larger one.
Relevance is the cosine similarity between the conversation's last user message and each
tool's name, description and argument names, by the core text embedder (:mod:`cove.embeddings`).
Always kept: the function ``tool_choice`` names, and functions the conversation already
called (their calls and results are in the prompt).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cove.chat import ChatMessage
    from cove.tools.spec import ToolSpec


def tool_text(tool: dict[str, Any]) -> str:
    """What a tool is about, for ranking: its name (``search_web`` -> ``search web``), its
    description and its argument names and descriptions."""
    f = tool["function"]
    parts = [f["name"].replace("_", " ").replace("-", " ").replace(".", " "),
             f.get("description") or ""]
    for name, schema in ((f.get("parameters") or {}).get("properties") or {}).items():
        parts.append(name.replace("_", " "))
        if isinstance(schema, dict) and isinstance(schema.get("description"), str):
            parts.append(schema["description"])
    return " ".join(parts)


def conversation_query(messages: list[ChatMessage]) -> str:
    """The text tools are ranked against: the last user message (the whole conversation's
    text when there is none)."""
    for m in reversed(messages):
        if m.role == "user" and m.content.strip():
            return m.content
    return " ".join(m.content for m in messages)


def called_names(messages: list[ChatMessage]) -> set[str]:
    """Functions the assistant already called in ``messages``."""
    names: set[str] = set()
    for m in messages:
        for call in m.tool_calls or []:
            name = (call.get("function") or {}).get("name")
            if isinstance(name, str):
                names.add(name)
    return names


def select_tools(spec: ToolSpec, messages: list[ChatMessage], limit: int) -> ToolSpec:
    """``spec`` with at most ``limit`` tools (``limit`` 0, or no more tools than that: all of
    them, unchanged): the ones ``tool_choice`` names or the conversation called, then the
    most similar to the last user message. The kept tools stay in the request's order, and
    ``offered`` records how many there were.

    Raises:
        ImportError: the ``wordllama`` package is missing (it is a dependency of Cove).
    """
    if limit <= 0 or len(spec.tools) <= limit:
        return spec
    from cove.embeddings import similarity

    names = spec.names
    pinned = ({spec.name} if spec.name else set()) | called_names(messages)
    scores = similarity(conversation_query(messages), [tool_text(t) for t in spec.tools])
    order = sorted(range(len(names)), key=lambda i: (names[i] not in pinned, -scores[i]))
    keep = set(order[: max(limit, len([n for n in names if n in pinned]))])
    tools = [t for i, t in enumerate(spec.tools) if i in keep]
    return replace(spec, tools=tools, offered=len(spec.tools))
