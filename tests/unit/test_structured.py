"""Schema checking and grammars for structured output (the subset the converter enforces)."""

from __future__ import annotations

from typing import Any

import pytest

from cove.errors import InvalidRequest
from cove.structured import check_schema, ollama_grammar, openai_grammar

PERSON = {
    "type": "object",
    "title": "Person",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 20},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3},
        "born": {"type": "string", "format": "date"},
        "kind": {"anyOf": [{"const": "x"}, {"$ref": "#/$defs/code"}]},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
    "$defs": {"code": {"type": "string", "pattern": "^[A-Z]{3}$"}},
}


def test_supported_schema_passes_and_converts() -> None:
    check_schema(PERSON)
    grammar = openai_grammar({"type": "json_schema", "json_schema": {"name": "p",
                                                                     "schema": PERSON}})
    assert grammar is not None and "root ::=" in grammar


@pytest.mark.parametrize(
    "schema,named",
    [
        ({"type": "integer", "minimum": 0},
         "keyword 'minimum' at response_format.json_schema.schema.minimum"),
        ({"properties": {"age": {"type": "integer", "maximum": 9}}}, "properties.age.maximum"),
        ({"not": {"type": "string"}}, "'not'"),
        ({"type": "array", "uniqueItems": True}, "uniqueItems"),
        ({"patternProperties": {"^x": {}}}, "patternProperties"),
        ({"type": "string", "format": "email"}, "format 'email'"),
        ({"type": "string", "pattern": "[a-z]+"}, "pattern"),
        ({"$ref": "https://example.com/s.json"}, "only local"),
        ({"anyOf": [{"type": "string"}, {"if": {}, "then": {}}]}, "anyOf[1].if"),
        ({"type": "number", "multipleOf": 2}, "multipleOf"),
    ],
)
def test_unsupported_feature_is_named(schema: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        check_schema(schema)
    assert named in e.value.message
    assert e.value.code == "unsupported_schema_feature"


@pytest.mark.parametrize("schema", [[1], {"type": "wizard"}, {"$ref": "#/$defs/none"},
                                    {"required": "name"}, {"enum": []}, {"minItems": -1}])
def test_invalid_schema_is_400(schema: Any) -> None:
    with pytest.raises(InvalidRequest):
        check_schema(schema)


def test_formats() -> None:
    assert openai_grammar(None) is None
    assert openai_grammar({"type": "text"}) is None
    assert openai_grammar({"type": "json_object"}) == ollama_grammar("json")
    assert ollama_grammar("") is None
    with pytest.raises(InvalidRequest) as e:
        openai_grammar({"type": "json_schema"})
    assert e.value.param == "response_format.json_schema"
    with pytest.raises(InvalidRequest) as e:
        ollama_grammar({"type": "integer", "minimum": 1})
    assert e.value.param == "format"


@pytest.mark.parametrize("schema,named", [
    ({"type": "string", "minLength": 10**9}, "minLength over 1000"),
    ({"type": "array", "maxItems": 1001}, "maxItems over 1000"),
    ({"type": "object", "properties": {"a": {"type": "string", "maxLength": 5000}}},
     "properties.a.maxLength"),
    ({"type": "string", "pattern": "^.{1000000000}$"}, "quantifier over 1000"),
    ({"type": "string", "pattern": "^a{2,5000}$"}, "quantifier over 1000"),
    ({"type": "string", "pattern": "^a{" + "9" * 5000 + "}$"}, "quantifier over 1000"),
])
def test_repetition_bounds_past_what_a_grammar_holds_are_refused(schema: dict[str, Any],
                                                                 named: str) -> None:
    # the converter writes a bound N as N copies of the item: minLength 1e9 needed 16 GB
    with pytest.raises(InvalidRequest) as e:
        openai_grammar({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert named in e.value.message
    assert e.value.code == "unsupported_schema_feature"


def test_bounds_up_to_the_limit_convert() -> None:
    schema = {"type": "object", "properties": {
        "s": {"type": "string", "minLength": 1000, "maxLength": 1000},
        "a": {"type": "array", "maxItems": 1000},
        "p": {"type": "string", "pattern": "^a{3,1000}$"}}}
    assert "root ::=" in (openai_grammar({"type": "json_schema",
                                          "json_schema": {"name": "x", "schema": schema}}) or "")


@pytest.mark.parametrize("schema", [{"type": "string", "minLength": 5, "maxLength": 2},
                                    {"type": "array", "minItems": 3, "maxItems": 1}])
def test_a_minimum_over_its_maximum_is_400(schema: dict[str, Any]) -> None:
    # the converter silently enforced neither (a 5-letter string passed maxLength 2)
    with pytest.raises(InvalidRequest) as e:
        check_schema(schema)
    assert "is greater than" in e.value.message
