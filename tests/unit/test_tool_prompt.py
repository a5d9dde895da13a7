"""Compact tool descriptions for templates without tool support, and choosing the tools of a
request that carries many (Open WebUI's 36 built-ins)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cove.chat import ChatMessage
from cove.tools.select import select_tools
from cove.tools.spec import ToolSpec, parse_tools, signature, type_text

FIXTURES = Path(__file__).parent.parent / "fixtures"


def openwebui_tools() -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = json.loads(
        (FIXTURES / "openwebui_first_chat_openai.json").read_text())["tools"]
    return tools


@pytest.mark.parametrize("schema,text", [
    ({"type": "string"}, "string"),
    ({"type": ["string", "null"]}, "string|null"),
    ({"enum": ["a", "b"]}, '"a"|"b"'),
    ({"const": 3}, "3"),
    ({"type": "array", "items": {"type": "integer"}}, "integer[]"),
    ({"type": "array", "items": {"anyOf": [{"type": "integer"}, {"type": "string"}]}},
     "(integer|string)[]"),
    ({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "number"}},
      "required": ["a"]}, "{a: string, b?: number}"),
    ({"type": "object"}, "object"),
    ({"$ref": "#/$defs/Place"}, "Place"),
    ({}, "any"),
])
def test_type_text(schema: dict[str, Any], text: str) -> None:
    assert type_text(schema) == text


def test_signature_keeps_names_types_and_descriptions() -> None:
    line = signature({"name": "search_web", "description": "Search the web.",
                      "parameters": {"type": "object", "required": ["query"], "properties": {
                          "query": {"type": "string", "description": "What to look up"},
                          "count": {"type": "integer"}}}})
    assert line == ("search_web(query: string, count?: integer): Search the web. "
                    "query: What to look up.")
    long = signature({"name": "f", "description": "word " * 200})
    assert len(long) < 300 and long.endswith("…")


def test_compact_description_is_far_smaller_than_the_json() -> None:
    tools = openwebui_tools()
    spec = parse_tools(tools)
    assert spec is not None
    text = spec.describe()
    assert len(text) < 0.65 * len(json.dumps(tools))
    for t in tools:  # every tool and argument is still named
        f = t["function"]
        assert f"- {f['name']}(" in text
        for arg in f["parameters"]["properties"]:
            assert f"{arg}" in text
    assert '{"name": <function name>, "arguments": <arguments object>}' in text


def spec_of(tools: list[dict[str, Any]], **kw: Any) -> ToolSpec:
    spec = parse_tools(tools, **kw)
    assert spec is not None
    return spec


def test_many_tools_are_cut_to_the_most_relevant() -> None:
    spec = spec_of(openwebui_tools())
    ask = [ChatMessage("user", "Please remember that my daughter is called Anna")]
    chosen = select_tools(spec, ask, 8)
    assert len(chosen.tools) == 8 and chosen.offered == 36
    assert "add_memory" in chosen.names and "search_memories" in chosen.names
    assert chosen.names == [n for n in spec.names if n in chosen.names]  # request order
    draw = select_tools(spec, [ChatMessage("user", "Draw a picture of a cat in a hat")], 3)
    assert "generate_image" in draw.names
    code = select_tools(spec, [ChatMessage("user", "Run this Python code: print(2**10)")], 3)
    assert "execute_code" in code.names
    grammar = chosen.grammar()  # calls are allowed to the kept tools only
    assert "add_memory" in grammar and "generate_image" not in grammar


def test_named_and_already_called_tools_are_always_kept() -> None:
    tools = openwebui_tools()
    named = {"type": "function", "function": {"name": "notify"}}
    spec = spec_of(tools, tool_choice=named)
    chosen = select_tools(spec, [ChatMessage("user", "Draw a cat")], 2)
    assert "notify" in chosen.names and len(chosen.names) == 2
    history = [ChatMessage("user", "What time is it?"),
               ChatMessage("assistant", "", tool_calls=[{"id": "c1", "type": "function",
                           "function": {"name": "view_skill", "arguments": "{}"}}]),
               ChatMessage("tool", "{}", tool_call_id="c1"),
               ChatMessage("user", "Draw a cat")]
    assert "view_skill" in select_tools(spec_of(tools), history, 2).names


def test_few_tools_or_no_limit_keep_everything() -> None:
    spec = spec_of(openwebui_tools()[:5])
    assert select_tools(spec, [ChatMessage("user", "hi")], 8) is spec
    everything = spec_of(openwebui_tools())
    assert select_tools(everything, [ChatMessage("user", "hi")], 0) is everything
