"""Load generation for the concurrency benchmark: N concurrent streamed chat requests."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field

import httpx

TOPICS = ["a dragon", "the sea", "a robot", "a lost key", "autumn", "a lighthouse", "a city",
          "a violin", "the moon", "a garden", "a train", "a storm", "a library", "a fox",
          "a mountain", "a clock"]


@dataclass
class StreamResult:
    ttft: float  # seconds from sending to the first content token
    tokens: int  # completion tokens
    end: float  # perf_counter() when the stream ended


@dataclass
class _Reader:
    """Reads the SSE lines of one streamed /v1/chat/completions answer. Tokens are counted
    from ``usage`` when the server sends it, else from the number of content chunks (one per
    token in llama.cpp servers)."""

    t0: float = field(default_factory=time.perf_counter)
    ttft: float = -1.0
    chunks: int = 0
    usage: int | None = None
    text: list[str] = field(default_factory=list)

    def line(self, line: str) -> None:
        if not line.startswith("data: ") or line == "data: [DONE]":
            return
        obj = json.loads(line[6:])
        if obj.get("usage"):
            self.usage = obj["usage"]["completion_tokens"]
        for ch in obj.get("choices") or []:
            piece = (ch.get("delta") or {}).get("content")
            if piece:
                if self.ttft < 0:
                    self.ttft = time.perf_counter() - self.t0
                self.chunks += 1
                self.text.append(piece)

    def result(self) -> StreamResult:
        end = time.perf_counter()
        tokens = self.usage if self.usage is not None else self.chunks
        return StreamResult(self.ttft if self.ttft >= 0 else end - self.t0, tokens, end)


def _body(model: str, messages: list[dict[str, str]], max_tokens: int, temperature: float,
          seed: int | None) -> dict[str, object]:
    body: dict[str, object] = {"model": model, "messages": messages, "max_tokens": max_tokens,
                               "temperature": temperature, "stream": True,
                               "stream_options": {"include_usage": True}}
    if seed is not None:
        body["seed"] = seed
    return body


def stream_chat(base: str, model: str, messages: list[dict[str, str]], max_tokens: int,
                temperature: float, seed: int | None = None) -> tuple[StreamResult, str]:
    """One streamed /v1/chat/completions request: its timing and its text."""
    reader = _Reader()
    body = _body(model, messages, max_tokens, temperature, seed)
    with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            reader.line(line)
    return reader.result(), "".join(reader.text)


@dataclass
class LoadResult:
    streams: int
    tokens_per_s: float  # aggregate completion tokens / wall time
    ttft_p50: float
    ttft_p95: float
    errors: int


async def _stream_chat_async(client: httpx.AsyncClient, base: str, body: dict[str, object],
                             ) -> StreamResult:
    reader = _Reader()
    async with client.stream("POST", base + "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            reader.line(line)
    return reader.result()


def round_messages(round_id: int, i: int) -> list[dict[str, str]]:
    """The chat of request ``i`` of round ``round_id``."""
    topic = TOPICS[i % len(TOPICS)]
    return [{"role": "user", "content": f"Write story number {100 * round_id + i} about {topic}."}]


def run_load(base: str, model: str, streams: int, max_tokens: int = 64,
             temperature: float = 0.8, round_id: int = 0) -> LoadResult:
    """Start ``streams`` requests at once; aggregate tokens/s over the whole round.

    Request i of round r asks for story number ``100 * r + i`` about ``TOPICS[i]``, seed i:
    every round is new conversations (no prompt repeats an earlier one) that share the chat
    template's text before the number, as users of one service share a system prompt.

    The client is one asyncio loop in one thread (httpx's AsyncClient): on a 2-core machine
    the load generator shares the CPU with the server it measures, and a thread per stream
    cost about twice the client CPU time (0.28 s against 0.15 s for 8 streams of 64 tokens).
    """

    def body(i: int) -> dict[str, object]:
        return _body(model, round_messages(round_id, i), max_tokens, temperature, i)

    async def go() -> tuple[list[StreamResult], int, float]:
        limits = httpx.Limits(max_connections=streams + 1, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=600, limits=limits) as client:
            t0 = time.perf_counter()
            outcomes = await asyncio.gather(
                *(_stream_chat_async(client, base, body(i)) for i in range(streams)),
                return_exceptions=True,
            )
        ok = [o for o in outcomes if isinstance(o, StreamResult)]
        for o in outcomes:
            if isinstance(o, BaseException) and not isinstance(o, httpx.HTTPError):
                raise o
        return ok, len(outcomes) - len(ok), t0

    results, errors, t0 = asyncio.run(go())
    wall = max((r.end for r in results), default=t0) - t0
    ttfts = sorted(r.ttft for r in results) or [0.0]
    p95 = ttfts[min(len(ttfts) - 1, int(round(0.95 * (len(ttfts) - 1))))]
    return LoadResult(streams, sum(r.tokens for r in results) / wall if wall > 0 else 0.0,
                      statistics.median(ttfts), p95, errors)
