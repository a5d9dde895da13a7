"""Structured output: JSON and JSON-schema constrained decoding for both APIs.

A request's format (OpenAI ``response_format``, Ollama ``format``) becomes a GBNF grammar
(llama.cpp's format) that the sampler enforces, so the output always parses and validates.
Grammars come from llama-cpp-python's port of llama.cpp's ``json_schema_to_grammar``. That
converter silently ignores keywords it does not understand (``minimum``, ``not``,
``uniqueItems``, ...), so every schema is first checked here against the subset it enforces:
anything else is refused with a 400 naming the keyword and its path, never accepted unenforced.

Supported (JSON Schema draft 2020-12 names): ``type`` (one or a list), ``properties``,
``required``, ``additionalProperties`` (bool or schema), ``items``, ``prefixItems``,
``minItems``, ``maxItems``, ``enum``, ``const``, ``anyOf``, ``oneOf`` (enforced as ``anyOf``),
``allOf`` (of object schemas), ``$ref`` to ``#/$defs/...`` or ``#/definitions/...``,
``minLength``, ``maxLength``, ``pattern`` (anchored ``^...$``), ``format`` ``date``, ``time``,
``date-time``; annotations (``title``, ``description``, ``default``, ``examples``, ...) are
ignored.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cove.errors import InvalidRequest

TYPES = {"string", "number", "integer", "boolean", "null", "object", "array"}
FORMATS = {"date", "time", "date-time"}
ANNOTATIONS = {"title", "description", "default", "examples", "$schema", "$id", "$comment",
               "deprecated", "readOnly", "writeOnly", "$anchor", "strict", "nullable"}
SCHEMA_KEYS = {"items", "additionalProperties"}
SCHEMA_LIST_KEYS = {"anyOf", "oneOf", "allOf", "prefixItems"}
SCHEMA_MAP_KEYS = {"properties", "$defs", "definitions"}
VALUE_KEYS = {"type", "required", "enum", "const", "$ref", "minItems", "maxItems",
              "minLength", "maxLength", "pattern", "format"}
SUPPORTED = ANNOTATIONS | SCHEMA_KEYS | SCHEMA_LIST_KEYS | SCHEMA_MAP_KEYS | VALUE_KEYS
MAX_SCHEMA_BYTES = 64 * 1024
MAX_DEPTH = 32
# Largest minItems/maxItems/minLength/maxLength and pattern quantifier: the converter writes a
# bound N out as N copies of the item (1e9 took 16 GB), and llama.cpp's grammar parser refuses
# optional repetitions nested much past 1,000 deep.
MAX_REPEAT = 1000
BOUNDS = (("minItems", "maxItems"), ("minLength", "maxLength"))
QUANTIFIER = re.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")


def check_schema(schema: Any, param: str = "response_format.json_schema.schema") -> None:
    """Check that ``schema`` (a decoded JSON schema) uses only keywords the grammar enforces.

    Raises:
        InvalidRequest: not an object, too big or deep, an unsupported keyword (named with its
            path, e.g. ``properties.age.minimum``), a bad ``type``/``format``/``pattern``, or a
            ``$ref`` that is not local or points nowhere.
    """
    if not isinstance(schema, dict):
        raise InvalidRequest("a JSON schema must be an object", param=param)
    if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
        raise InvalidRequest(f"the JSON schema is larger than {MAX_SCHEMA_BYTES} bytes",
                             param=param)
    _check(schema, schema, "", param, 0)


def _unsupported(what: str, path: str, param: str) -> InvalidRequest:
    # the full request path (``response_format.json_schema.schema.minimum``): a bare
    # ``at minimum`` for a top-level keyword read as English ("at minimum")
    full = f"{param}.{path}" if param and path else path or param
    where = f" at {full}" if full else ""
    return InvalidRequest(f"JSON schema feature not supported for constrained output: "
                          f"{what}{where}", param=param, code="unsupported_schema_feature")


def _resolve(root: dict[str, Any], ref: str) -> Any:
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _check(node: Any, root: dict[str, Any], path: str, param: str, depth: int) -> None:
    if isinstance(node, bool):
        if node is False:
            raise _unsupported("the schema false", path, param)
        return
    if not isinstance(node, dict):
        raise InvalidRequest(f"expected a schema object at {path or 'the root'}", param=param)
    if depth > MAX_DEPTH:
        raise _unsupported(f"nesting deeper than {MAX_DEPTH}", path, param)

    def here(key: str) -> str:
        return f"{path}.{key}" if path else key

    for key, value in node.items():
        if key not in SUPPORTED:
            raise _unsupported(f"keyword {key!r}", here(key), param)
        if key == "type":
            types = value if isinstance(value, list) else [value]
            bad = [t for t in types if t not in TYPES]
            if bad or not types:
                raise InvalidRequest(f"unknown type {bad[0] if bad else value!r} at "
                                     f"{here(key)}", param=param)
        elif key == "format" and value not in FORMATS:
            raise _unsupported(f"format {value!r}", here(key), param)
        elif key == "pattern" and not (isinstance(value, str) and value.startswith("^")
                                       and value.endswith("$")):
            raise _unsupported("a pattern not anchored with ^...$", here(key), param)
        elif key == "$ref":
            if not isinstance(value, str) or not value.startswith("#/"):
                raise _unsupported(f"$ref {value!r} (only local #/... references)",
                                   here(key), param)
            if _resolve(root, value) is None:
                raise InvalidRequest(f"$ref {value!r} points nowhere", param=param)
        elif key == "pattern" and any(len(n) > 6 or int(n) > MAX_REPEAT
                                      for m in QUANTIFIER.finditer(value)
                                      for n in m.groups() if n):
            raise _unsupported(f"a pattern quantifier over {MAX_REPEAT}", here(key), param)
        elif key in ("minItems", "maxItems", "minLength", "maxLength"):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise InvalidRequest(f"{here(key)} must be a non-negative integer", param=param)
            if value > MAX_REPEAT:
                raise _unsupported(f"{key} over {MAX_REPEAT}", here(key), param)
        elif key == "required" and not (isinstance(value, list)
                                         and all(isinstance(v, str) for v in value)):
            raise InvalidRequest(f"{here(key)} must be a list of property names", param=param)
        elif key == "enum" and not (isinstance(value, list) and value):
            raise InvalidRequest(f"{here(key)} must be a non-empty list", param=param)
        elif key in SCHEMA_KEYS and not (key == "additionalProperties" and value is False):
            if key == "additionalProperties" and value is True:
                continue
            _check(value, root, here(key), param, depth + 1)
        elif key in SCHEMA_LIST_KEYS:
            if not isinstance(value, list) or not value:
                raise InvalidRequest(f"{here(key)} must be a non-empty list of schemas",
                                     param=param)
            for i, sub in enumerate(value):
                _check(sub, root, f"{here(key)}[{i}]", param, depth + 1)
        elif key in SCHEMA_MAP_KEYS:
            if not isinstance(value, dict):
                raise InvalidRequest(f"{here(key)} must be an object of schemas", param=param)
            for name, sub in value.items():
                _check(sub, root, f"{here(key)}.{name}", param, depth + 1)
    for low, high in BOUNDS:
        if low in node and high in node and node[low] > node[high]:
            raise InvalidRequest(f"{here(low)} {node[low]} is greater than {high} {node[high]}",
                                 param=param)
    if "allOf" in node and node.get("type", "object") != "object":
        raise _unsupported("allOf of non-object schemas", here("allOf"), param)
    if "items" in node and "prefixItems" in node:
        raise _unsupported("items together with prefixItems", here("items"), param)


def schema_grammar(schema: dict[str, Any] | None, param: str) -> str:
    """The GBNF grammar for any JSON object (``schema`` None) or for a checked JSON schema.

    Raises:
        InvalidRequest: see :func:`check_schema`; or the converter failed on the schema.
    """
    from cove.engine.llama import json_grammar

    if schema is not None:
        check_schema(schema, param)
    try:
        return json_grammar(schema)
    except InvalidRequest as e:
        raise InvalidRequest(e.message, param=param) from e


def openai_grammar(response_format: dict[str, Any] | None) -> str | None:
    """GBNF for OpenAI's ``response_format``: ``{"type": "text"}`` (None),
    ``{"type": "json_object"}``, or ``{"type": "json_schema", "json_schema": {"name", "schema",
    "strict"}}`` (OpenAI's Structured Outputs shape).

    Raises:
        InvalidRequest: an unknown type, a missing or unsupported schema.
    """
    if not response_format:
        return None
    kind = response_format.get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return schema_grammar(None, "response_format")
    if kind != "json_schema":
        raise InvalidRequest(f"unknown response_format type {kind!r}; expected text, "
                             "json_object or json_schema", param="response_format.type")
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict):
        raise InvalidRequest("response_format json_schema needs a 'json_schema' object",
                             param="response_format.json_schema")
    schema = spec.get("schema")
    if schema is None:  # OpenAI allows omitting it: any JSON object
        return schema_grammar(None, "response_format.json_schema")
    return schema_grammar(schema, "response_format.json_schema.schema")


def ollama_grammar(fmt: str | dict[str, Any] | None) -> str | None:
    """GBNF for Ollama's ``format``: ``"json"`` (any JSON object) or a JSON schema object.

    Raises:
        InvalidRequest: another string, or an unsupported schema.
    """
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return schema_grammar(None, "format")
    if isinstance(fmt, dict):
        return schema_grammar(fmt, "format")
    raise InvalidRequest(f"invalid format {fmt!r}: use \"json\" or a JSON schema",
                         param="format")
