"""Load generation for the concurrency benchmark: N concurrent streamed chat requests."""

from __future__ import annotations

import json
import statistics
import threading
import time
from dataclasses import dataclass

import httpx

TOPICS = ["a dragon", "the sea", "a robot", "a lost key", "autumn", "a lighthouse", "a city",
          "a violin", "the moon", "a garden", "a train", "a storm", "a library", "a fox",
          "a mountain", "a clock"]


@dataclass
class StreamResult:
    ttft: float  # seconds from sending to the first content token
    tokens: int  # completion tokens
    end: float  # perf_counter() when the stream ended


def stream_chat(base: str, model: str, messages: list[dict[str, str]], max_tokens: int,
                temperature: float, seed: int | None = None) -> tuple[StreamResult, str]:
    """One streamed /v1/chat/completions request; tokens are counted from ``usage`` when the
    server sends it, else from the number of content chunks (one per token in llama.cpp
    servers)."""
    body: dict[str, object] = {"model": model, "messages": messages, "max_tokens": max_tokens,
                               "temperature": temperature, "stream": True,
                               "stream_options": {"include_usage": True}}
    if seed is not None:
        body["seed"] = seed
    t0 = time.perf_counter()
    ttft = -1.0
    chunks = 0
    usage_tokens = None
    text = []
    with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            obj = json.loads(line[6:])
            if obj.get("usage"):
                usage_tokens = obj["usage"]["completion_tokens"]
            for ch in obj.get("choices") or []:
                piece = (ch.get("delta") or {}).get("content")
                if piece:
                    if ttft < 0:
                        ttft = time.perf_counter() - t0
                    chunks += 1
                    text.append(piece)
    end = time.perf_counter()
    tokens = usage_tokens if usage_tokens is not None else chunks
    return StreamResult(ttft if ttft >= 0 else end - t0, tokens, end), "".join(text)


@dataclass
class LoadResult:
    streams: int
    tokens_per_s: float  # aggregate completion tokens / wall time
    ttft_p50: float
    ttft_p95: float
    errors: int


def run_load(base: str, model: str, streams: int, max_tokens: int = 64,
             temperature: float = 0.8) -> LoadResult:
    """Start ``streams`` requests at once; aggregate tokens/s over the whole round."""
    results: list[StreamResult] = []
    errors = 0
    lock = threading.Lock()

    def one(i: int) -> None:
        nonlocal errors
        msgs = [{"role": "user", "content": f"Write a story about {TOPICS[i % len(TOPICS)]}."}]
        try:
            res, _ = stream_chat(base, model, msgs, max_tokens, temperature, seed=i)
        except httpx.HTTPError:
            with lock:
                errors += 1
            return
        with lock:
            results.append(res)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = max((r.end for r in results), default=t0) - t0
    ttfts = sorted(r.ttft for r in results) or [0.0]
    p95 = ttfts[min(len(ttfts) - 1, int(round(0.95 * (len(ttfts) - 1))))]
    return LoadResult(streams, sum(r.tokens for r in results) / wall if wall > 0 else 0.0,
                      statistics.median(ttfts), p95, errors)
