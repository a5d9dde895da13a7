"""One stream: decode tokens/s through Cove's HTTP API ÷ raw in-process llama-cpp-python.

Both sides run in this one process run, on the bundled model, with greedy decoding of the same
prompt (so both produce the same tokens), alternating, several rounds; the median of each side is
compared. Decode rate is (tokens - 1) / (time of last token - time of first token), so prompt
processing is excluded on both sides. Writes the result to docs/benchmarks.md.

Usage: .venv/bin/python bench/single_stream.py [--tokens 256] [--rounds 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cove_server, machine, write_section  # noqa: E402
from cove.config import load_settings  # noqa: E402
from cove.models.registry import bundled_model_path  # noqa: E402

PROMPT = "Once upon a time, in a land far away, there lived a dragon who"


def raw_rate(llm: object, tokens: int) -> tuple[float, int]:
    """Decode tokens/s of Llama.generate on PROMPT, greedy, ``tokens`` tokens."""
    from llama_cpp import Llama

    assert isinstance(llm, Llama)
    llm.reset()
    prompt = llm.tokenize(PROMPT.encode())
    times: list[float] = []
    for _tok in llm.generate(prompt, temp=0.0, reset=True):
        times.append(time.perf_counter())
        if len(times) >= tokens:
            break
    return (len(times) - 1) / (times[-1] - times[0]), len(times)


def api_rate(base: str, tokens: int) -> tuple[float, int]:
    """Decode tokens/s through POST /v1/completions (streamed), same prompt, greedy."""
    body = {"model": "smollm2:135m", "prompt": PROMPT, "max_tokens": tokens, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    times: list[float] = []
    n = 0
    with httpx.stream("POST", base + "/v1/completions", json=body, timeout=120) as r:
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            obj = json.loads(line[6:])
            if obj["choices"] and obj["choices"][0]["text"]:
                times.append(time.perf_counter())
            if obj.get("usage"):
                n = obj["usage"]["completion_tokens"]
    # text events can merge tokens (held-back stop text / UTF-8); rate uses the token count
    return (n - 1) / (times[-1] - times[0]), n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    from llama_cpp import Llama

    settings = load_settings()
    llm = Llama(str(bundled_model_path()), n_ctx=settings.n_ctx, n_threads=settings.n_threads,
                n_threads_batch=settings.n_threads, verbose=False)
    raw: list[float] = []
    api: list[float] = []
    with cove_server() as base:
        api_rate(base, 16)  # load the model in the server
        raw_rate(llm, 16)
        for i in range(args.rounds):
            r, nr = raw_rate(llm, args.tokens)
            a, na = api_rate(base, args.tokens)
            raw.append(r)
            api.append(a)
            print(f"round {i + 1}: raw {r:.1f} tok/s ({nr} tokens), "
                  f"cove API {a:.1f} tok/s ({na} tokens)")
    r_med, a_med = statistics.median(raw), statistics.median(api)
    ratio = a_med / r_med
    print(f"median raw {r_med:.1f} tok/s, Cove API {a_med:.1f} tok/s, ratio {ratio:.3f}")
    write_section(
        "One stream: Cove HTTP API vs raw llama-cpp-python",
        f"""Measured {dt.date.today().isoformat()} on {machine()}; model SmolLM2-135M-Instruct Q4_1
(bundled), {settings.n_threads} threads, greedy, {args.tokens} tokens, median of {args.rounds}
rounds (`bench/single_stream.py`). Decode rate excludes prompt processing on both sides.

| side | tokens/s |
|---|---|
| raw in-process llama-cpp-python (`Llama.generate`) | {r_med:.1f} |
| Cove, streamed through `POST /v1/completions` | {a_med:.1f} |
| **ratio Cove ÷ raw** (target ≥ 0.95) | **{ratio:.3f}** |
""",
    )


if __name__ == "__main__":
    main()
