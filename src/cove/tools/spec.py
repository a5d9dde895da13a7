"""Tool definitions (OpenAI's ``tools`` / ``tool_choice`` shapes) and the grammar of a call.

A tool call is generated as JSON ``{"name": "<function>", "arguments": {...}}`` (the Hermes /
Qwen convention, also what models without a tool template are told to produce); several calls
(``parallel_tool_calls``) as a JSON array of those. The grammar pins ``name`` to a declared
function and ``arguments`` to that function's ``parameters`` schema, so every call parses and
validates. With ``tool_choice`` ``auto`` the grammar also allows a plain answer that does not
begin with ``{``, ``[`` or ``<``.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from cove.errors import InvalidRequest
from cove.structured import check_schema

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
FREE_TEXT = (
    'cove-free ::= [^{[<\\x00] cove-any* | ""\n'
    "cove-any ::= [^\\x00]\n"
    'cove-tagged ::= "<tool_call>" [ \\n]* cove-call [ \\n]* "</tool_call>"\n'
)


@dataclass(frozen=True)
class ToolCall:
    """One call: ``id`` (``call_...``), function ``name``, ``arguments`` as a JSON text."""

    name: str
    arguments: str
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")


@dataclass(frozen=True)
class ToolCalls:
    """A stream item: the calls the model made (it ends the answer)."""

    calls: list[ToolCall]


MAX_CALLS = 8  # most calls in one answer with parallel calls (the grammar's maxItems)


@dataclass(frozen=True)
class ToolSpec:
    """Validated tools of a request. ``choice`` is ``auto``, ``required`` or ``function``
    (with ``name``); ``tools`` are the OpenAI-shaped definitions (for templates).
    ``offered`` is how many tools the request carried when only some of them were kept for
    the prompt (:func:`cove.tools.select.select_tools`), else 0."""

    tools: list[dict[str, Any]]
    choice: str
    name: str | None
    parallel: bool
    offered: int = 0

    @property
    def names(self) -> list[str]:
        """The function names, in the request's order."""
        return [t["function"]["name"] for t in self.tools]

    @property
    def functions(self) -> dict[str, dict[str, Any]]:
        """Function name -> its parameters schema."""
        return {t["function"]["name"]: t["function"].get("parameters") or {"type": "object"}
                for t in self.tools}

    def grammar(self) -> str:
        """The GBNF grammar of this request's output."""
        from cove.engine.llama import json_grammar

        funcs = self.functions
        names = [self.name] if self.name else list(funcs)
        defs: dict[str, Any] = {}
        calls = [{"type": "object", "properties": {"name": {"const": n},
                                                   "arguments": _hoist_defs(funcs[n], i, defs)},
                  "required": ["name", "arguments"], "additionalProperties": False}
                 for i, n in enumerate(names)]
        call: dict[str, Any] = calls[0] if len(calls) == 1 else {"anyOf": calls}
        schema = ({"type": "array", "items": call, "minItems": 1, "maxItems": MAX_CALLS}
                  if self.parallel else call)
        if defs:
            schema = {**schema, "$defs": defs}
        grammar = json_grammar(schema)
        if self.choice != "auto":
            return grammar
        grammar = re.sub(r"^root ::=", "cove-call ::=", grammar, count=1, flags=re.M)
        return f"root ::= cove-call | cove-tagged | cove-free\n{FREE_TEXT}{grammar}"

    def describe(self) -> str:
        """A system-prompt text telling a model without a tool template how to call tools:
        one line per tool in a compact signature form (:func:`signature`), about a third of
        the tokens of the JSON definitions."""
        lines = ["You can call these functions:"]
        lines += [f"- {signature(t['function'])}" for t in self.tools]
        many = " (or a JSON array of such objects for several calls)" if self.parallel else ""
        lines.append('To call a function, answer only with JSON: {"name": <function name>, '
                     f'"arguments": <arguments object>}}{many}.')
        return "\n".join(lines)


MAX_DESCRIPTION = 240  # characters of a description kept in the compact form


def _short(text: str, limit: int = MAX_DESCRIPTION) -> str:
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = cut.rfind(". ")
    return cut[: end + 1] if end > limit // 2 else cut.rstrip() + "…"


def type_text(schema: Any, depth: int = 0) -> str:
    """A JSON schema as a short TypeScript-like type: ``string``, ``"a"|"b"``, ``integer[]``,
    ``{city: string, days?: integer}``, ``string|null``."""
    if not isinstance(schema, dict):
        return "any"
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    if "enum" in schema:
        return "|".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return "|".join(type_text(s, depth) for s in schema[key])
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    kind = schema.get("type")
    if isinstance(kind, list):
        return "|".join(type_text({**schema, "type": k}, depth) for k in kind)
    if kind == "array":
        inner = type_text(schema.get("items"), depth + 1)
        return f"({inner})[]" if "|" in inner else f"{inner}[]"
    if kind == "object" or "properties" in schema:
        props = schema.get("properties")
        if not isinstance(props, dict) or not props:
            return "object"
        if depth >= 2:
            return "object"
        required = set(schema.get("required") or [])
        fields = [f"{k}{'' if k in required else '?'}: {type_text(v, depth + 1)}"
                  for k, v in props.items()]
        return "{" + ", ".join(fields) + "}"
    return str(kind) if kind else "any"


def signature(function: dict[str, Any]) -> str:
    """One tool as a line: ``name(arg: type, opt?: type): description. arg: what it is.``
    (optional arguments marked ``?``; argument descriptions follow the tool's)."""
    params = function.get("parameters") or {}
    props = params.get("properties") or {}
    required = set(params.get("required") or [])
    args = ", ".join(f"{k}{'' if k in required else '?'}: {type_text(v, 1)}"
                     for k, v in props.items())
    notes = [_short(function.get("description") or "")]
    notes += [f"{k}: {_short(v['description'], 120)}" for k, v in props.items()
              if isinstance(v, dict) and v.get("description")]
    text = " ".join(n if n.endswith((".", "…", "?", "!")) else n + "." for n in notes if n)
    return f"{function['name']}({args})" + (f": {text}" if text else "")


def _hoist_defs(params: dict[str, Any], i: int, defs: dict[str, Any]) -> dict[str, Any]:
    """``params`` with its ``$defs``/``definitions`` moved into ``defs`` (the call grammar's
    root, where the converter resolves ``#/...`` references) as ``f<i>-<name>``, and its local
    ``$ref``s rewritten to match: so each function's definitions are found, and two functions
    defining the same name do not share one rule."""
    own = {f"#/{kind}/{name}": f"f{i}-{kind.lstrip('$')}-{name}"
           for kind in ("$defs", "definitions") if isinstance(params.get(kind), dict)
           for name in params[kind]}
    if not own:
        return params

    def rewrite(node: Any) -> Any:
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: rewrite(v) for k, v in node.items() if k not in ("$defs", "definitions")}
        ref = node.get("$ref")
        if isinstance(ref, str):
            for old, new in own.items():
                if ref == old or ref.startswith(old + "/"):
                    out["$ref"] = f"#/$defs/{new}{ref[len(old):]}"
        return out

    for kind in ("$defs", "definitions"):
        for name, sub in (params.get(kind) or {}).items():
            defs[own[f"#/{kind}/{name}"]] = rewrite(sub)
    return rewrite(params)


def _tool(i: int, tool: Any) -> dict[str, Any]:
    where = f"tools[{i}]"
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        raise InvalidRequest("each tool must be {\"type\": \"function\", \"function\": {...}}",
                             param=f"{where}.type")
    fn = tool.get("function")
    if not isinstance(fn, dict):
        raise InvalidRequest("a tool needs a 'function' object", param=f"{where}.function")
    name = fn.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidRequest("function name must be 1-64 letters, digits, _ . or -",
                             param=f"{where}.function.name")
    desc = fn.get("description")
    if desc is not None and not isinstance(desc, str):
        raise InvalidRequest("description must be a string", param=f"{where}.function.description")
    params = fn.get("parameters")
    if params is not None:
        check_schema(params, f"{where}.function.parameters")
        if params.get("type", "object") != "object":
            raise InvalidRequest("function parameters must be an object schema",
                                 param=f"{where}.function.parameters.type")
    out = {"name": name, "parameters": params or {"type": "object", "properties": {}}}
    if desc:
        out["description"] = desc
    return {"type": "function", "function": out}


def parse_tools(tools: Any, tool_choice: Any = None,
                parallel: bool | None = None) -> ToolSpec | None:
    """Validate OpenAI's ``tools``, ``tool_choice`` (``"auto"``, ``"none"``, ``"required"``,
    ``{"type": "function", "function": {"name": ...}}``) and ``parallel_tool_calls``.

    Returns None when there is nothing to call (no tools, or ``tool_choice`` ``"none"``).

    Raises:
        InvalidRequest: a malformed tool (naming ``tools[i]...``), duplicate names, an unknown
            choice or a named function that is not declared (``tool_choice``).
    """
    if tools is None or tools == []:
        if tool_choice not in (None, "none", "auto"):
            raise InvalidRequest("tool_choice needs tools", param="tool_choice")
        return None
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list", param="tools")
    if len(tools) > 128:
        raise InvalidRequest("at most 128 tools are supported", param="tools")
    parsed = [_tool(i, t) for i, t in enumerate(tools)]
    names = [t["function"]["name"] for t in parsed]
    if len(set(names)) != len(names):
        raise InvalidRequest("function names must be unique", param="tools")
    name = None
    if tool_choice in (None, "auto"):
        choice = "auto"
    elif tool_choice == "none":
        return None
    elif tool_choice == "required":
        choice = "required"
    elif isinstance(tool_choice, dict) and isinstance(tool_choice.get("function"), dict):
        name = tool_choice["function"].get("name")
        if name not in names:
            raise InvalidRequest(f"tool_choice names {name!r}, which is not in tools",
                                 param="tool_choice")
        choice = "function"
    else:
        raise InvalidRequest("tool_choice must be auto, none, required or "
                             "{\"type\": \"function\", \"function\": {\"name\": ...}}",
                             param="tool_choice")
    return ToolSpec(parsed, choice, name, parallel is not False and name is None)
