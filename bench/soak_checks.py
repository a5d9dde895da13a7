"""What counts as the right answer in the soak test (``bench/soak.py``): the failure kinds, the
status check (a 503 with ``Retry-After`` is the expected answer to a full queue), the error
shapes of each API, the bad requests and what each must get, and the stream line reader."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from bench.reliability import MODEL


class Failure(Exception):
    """Not the expected answer: ``kind`` is one of the report's failure kinds."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class Overloaded(Exception):
    """HTTP 503 with ``Retry-After`` (seconds): the expected answer to a full queue."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"503, Retry-After {retry_after}")
        self.retry_after = retry_after


class Disconnected(Exception):
    """The client went away mid-stream on purpose."""


def snippet(r: httpx.Response) -> str:
    try:
        return r.text[:200].replace("\n", " ")
    except httpx.ResponseNotRead:
        return ""


async def check_status(r: httpx.Response, expected: int = 200) -> None:
    """Raise unless ``r`` has status ``expected`` (reading the body of a streamed error first).

    Raises:
        Overloaded: 503 with a numeric ``Retry-After``.
        Failure: ``503 without Retry-After``, ``5xx``, or ``unexpected status``.
    """
    if r.status_code == expected:
        return
    await r.aread()
    where = f"{r.request.method} {r.request.url.path} → {r.status_code} {snippet(r)}"
    if r.status_code == 503:
        try:
            raise Overloaded(float(r.headers["retry-after"]))
        except (KeyError, ValueError):
            raise Failure("503 without Retry-After", where) from None
    if r.status_code >= 500:
        raise Failure("5xx", where)
    raise Failure("unexpected status", where)


async def stream_lines(r: httpx.Response, limit: int | None) -> AsyncIterator[str]:
    """The non-empty lines of a streamed body; with ``limit``, raise Disconnected (the client
    leaves) instead of reading more than that many."""
    n = 0
    async for line in r.aiter_lines():
        if not line:
            continue
        if limit is not None and n >= limit:
            raise Disconnected
        n += 1
        yield line


def json_line(line: str, where: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        raise Failure("malformed stream", f"{where}: not JSON: {line[:120]!r}") from None


def stream_error(where: str, error: Any) -> Failure:
    """The failure for an error event in a stream that began with status 200: an overload
    (OpenAI code ``overloaded``) told this way has no ``Retry-After``, so it is a kind of its
    own."""
    overloaded = isinstance(error, dict) and error.get("code") == "overloaded"
    return Failure("overload as an error event in a 200 stream" if overloaded
                   else "error event in stream", f"{where}: {str(error)[:200]}")


def openai_error_ok(body: Any) -> bool:
    """Whether ``body`` is exactly OpenAI's error object."""
    err = body.get("error") if isinstance(body, dict) else None
    return (isinstance(err, dict) and set(body) == {"error"}
            and set(err) == {"message", "type", "param", "code"}
            and isinstance(err["message"], str) and bool(err["message"])
            and isinstance(err["type"], str))


def ollama_error_ok(body: Any) -> bool:
    """Whether ``body`` is exactly Ollama's error object."""
    return (isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], str)
            and bool(body["error"]))


@dataclass(frozen=True)
class BadRequest:
    """A request the server must refuse with ``status`` in the shape of ``api``; ``param``, if
    given, must be the OpenAI error's ``param``."""

    name: str
    path: str
    body: bytes
    status: int
    api: str  # "openai" or "ollama"
    param: str | None = None


def _j(obj: Any) -> bytes:
    return json.dumps(obj).encode()


_MSG = [{"role": "user", "content": "hi"}]
BAD_REQUESTS = [
    BadRequest("openai malformed JSON", "/v1/chat/completions",
               b'{"model": "smollm2:135m", "messages": [', 400, "openai"),
    BadRequest("openai unknown role", "/v1/chat/completions",
               _j({"model": MODEL, "messages": [{"role": "wizard", "content": "hi"}]}), 400,
               "openai", "messages[0].role"),
    BadRequest("openai max_tokens <= 0", "/v1/chat/completions",
               _j({"model": MODEL, "messages": _MSG, "max_tokens": -5}), 400, "openai",
               "max_tokens"),
    BadRequest("openai unknown model", "/v1/chat/completions",
               _j({"model": "no-such-model:1b", "messages": _MSG, "stream": True}), 404,
               "openai", "model"),
    BadRequest("openai empty prompt", "/v1/completions", _j({"model": MODEL, "prompt": ""}),
               400, "openai"),
    BadRequest("ollama malformed JSON", "/api/chat", b'{"model": ', 400, "ollama"),
    BadRequest("ollama unknown model", "/api/chat",
               _j({"model": "no-such-model:1b", "messages": _MSG}), 404, "ollama"),
    BadRequest("ollama bad option", "/api/generate",
               _j({"model": MODEL, "prompt": "hi", "options": {"temperature": "hot"}}), 400,
               "ollama"),
    BadRequest("ollama embed bad input", "/api/embed", _j({"model": MODEL, "input": 123}), 400,
               "ollama"),
]
BAD_EMBEDDINGS_V1 = BadRequest("openai embeddings bad input", "/v1/embeddings",
                               _j({"model": MODEL, "input": 123}), 400, "openai", "input")


def check_vectors(where: str, vectors: Any, n: int) -> None:
    """``n`` vectors of one dimension > 0 and unit length, else Failure(wrong answer shape)."""
    ok = (isinstance(vectors, list) and len(vectors) == n
          and all(isinstance(v, list) and v and len(v) == len(vectors[0]) for v in vectors)
          and all(abs(sum(x * x for x in v) - 1.0) < 1e-3 for v in vectors))
    if not ok:
        raise Failure("wrong answer shape", f"{where}: {str(vectors)[:120]}")
