"""``/openapi.json`` says what the server does: 400 (not FastAPI's 422) in each API's error shape,
the streams' media types; and every request body's booleans are strict."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from pydantic import BaseModel
from pydantic.types import Strict

from tests.conftest import FakeWorld

STREAMS = {
    ("/v1/chat/completions", "post"): "text/event-stream",
    ("/v1/completions", "post"): "text/event-stream",
    ("/api/chat", "post"): "application/x-ndjson",
    ("/api/generate", "post"): "application/x-ndjson",
    ("/api/pull", "post"): "application/x-ndjson",
    ("/api/create", "post"): "application/x-ndjson",
    ("/web/conversations/{conversation_id}/messages", "post"): "text/event-stream",
    ("/web/guest/chat", "post"): "text/event-stream",
}


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_no_422_and_400_in_the_apis_own_shape(fake: FakeWorld) -> None:
    schema = fake.client.get("/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    with_body = 0
    for path, method, op in operations(schema):
        assert "422" not in op["responses"], (method, path)
        shape = "OllamaError" if path.startswith("/api/") else "OpenAIError"
        ref = {"$ref": f"#/components/schemas/{shape}"}
        assert op["responses"]["default"]["content"]["application/json"]["schema"] == ref
        if "requestBody" in op:
            with_body += 1
            assert op["responses"]["400"]["content"]["application/json"]["schema"] == ref
    assert with_body >= 20
    error = schema["components"]["schemas"]["OpenAIError"]["properties"]["error"]
    assert error["required"] == ["message", "type", "param", "code"]


def test_streams_declare_their_media_type(fake: FakeWorld) -> None:
    schema = fake.client.get("/openapi.json").json()
    for (path, method), media in STREAMS.items():
        content = schema["paths"][path][method]["responses"]["200"]["content"]
        assert media in content, (path, content)
    web = schema["paths"]["/web/guest/chat"]["post"]["responses"]["200"]["content"]
    assert list(web) == ["text/event-stream"]


def test_documented_400s_are_what_the_server_answers(fake: FakeWorld) -> None:
    """Every operation that takes a body answers a body that is not an object with 400 (or,
    on routes that need a signed-in user first, 401): never 422."""
    schema = fake.client.get("/openapi.json").json()
    for path, method, op in operations(schema):
        if "requestBody" not in op:
            continue
        url = path.replace("{conversation_id}", "c1").replace("{key_id}", "1") \
                  .replace("{user_id}", "1")
        resp = fake.client.request(method.upper(), url, json=[1, 2])
        assert resp.status_code in (400, 401), (method, path, resp.status_code, resp.text)


# -- strict booleans on every request body -------------------------------------------------


def _routes(routes: list[Any]) -> Iterator[Any]:
    """Every route, looking inside included routers (FastAPI keeps them nested)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes)
        else:
            yield route


def _body_models(app: Any) -> set[type[BaseModel]]:
    models = set()
    for route in _routes(app.routes):
        endpoint = getattr(route, "endpoint", None)
        if endpoint is None:
            continue
        for hint in typing.get_type_hints(endpoint, include_extras=True).values():
            # a bare model is a body (an Annotated one is a dependency, such as SettingsDep)
            if inspect.isclass(hint) and issubclass(hint, BaseModel):
                models.add(hint)
    return models


def _loose_bools(tp: Any, where: str, strict: bool = False,
                 seen: set[type] | None = None) -> list[str]:
    """Paths of ``bool`` fields in ``tp`` (a type or a model) that accept non-booleans."""
    seen = set() if seen is None else seen
    if typing.get_origin(tp) is Annotated:
        base, *meta = typing.get_args(tp)
        return _loose_bools(base, where, strict or any(
            isinstance(m, Strict) and m.strict for m in meta), seen)
    if tp is bool:
        return [] if strict else [where]
    if inspect.isclass(tp) and issubclass(tp, BaseModel):
        if tp in seen:
            return []
        seen.add(tp)
        out = []
        for name, field in tp.model_fields.items():
            is_strict = any(isinstance(m, Strict) and m.strict for m in field.metadata)
            out += _loose_bools(field.annotation, f"{where}.{name}", is_strict, seen)
        return out
    return [w for arg in typing.get_args(tp) for w in _loose_bools(arg, where, False, seen)]


def test_every_boolean_in_every_request_body_is_strict(fake: FakeWorld) -> None:
    models = _body_models(fake.app)
    names = {m.__name__ for m in models}
    assert {"ChatCompletionRequest", "ChatBody", "Send", "UserChange"} <= names
    loose = [w for m in models for w in _loose_bools(m, m.__name__)]
    assert loose == [], "use pydantic.StrictBool for these request fields"


@pytest.mark.parametrize("field,value", [("regenerate", "yes"), ("regenerate", 1)])
def test_web_booleans_are_strict(fake: FakeWorld, field: str, value: Any) -> None:
    from tests.web.helpers import Browser

    alice = Browser(fake.client)
    assert alice.signup("alice@example.org").status_code == 200
    cid = alice.post("/web/conversations", json={}).json()["id"]
    resp = alice.post(f"/web/conversations/{cid}/messages", json={field: value})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == field
