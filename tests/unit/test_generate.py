"""run_generation with a scripted engine: UTF-8 safety, stops across tokens, limits, usage."""

from __future__ import annotations

import threading

from cove.engine.fake import ScriptedEngine
from cove.engine.generate import run_generation
from cove.engine.types import Finished, SamplingParams, TextDelta


def gen(engine: ScriptedEngine, params: SamplingParams, prompt_len: int = 3,
        cancel: threading.Event | None = None) -> tuple[list[str], Finished]:
    events = list(run_generation(engine, list(range(prompt_len)), params, cancel))
    *deltas, done = events
    assert isinstance(done, Finished)
    assert all(isinstance(d, TextDelta) for d in deltas)
    return [d.text for d in deltas if isinstance(d, TextDelta)], done


def test_multibyte_characters_split_across_tokens_arrive_whole() -> None:
    text = "héllo 🤔 中文 ✅"
    raw = text.encode()
    e = ScriptedEngine()
    e.enqueue([raw[i : i + 1] for i in range(len(raw))])  # one byte per token
    deltas, done = gen(e, SamplingParams())
    assert "".join(deltas) == text
    assert "\ufffd" not in "".join(deltas)
    assert done.reason == "stop"
    assert done.usage.completion_tokens == len(raw)


def test_stop_spanning_tokens_is_not_leaked() -> None:
    e = ScriptedEngine()
    e.enqueue(["Hello", " wor", "ld\n", "Us", "er", ":", " more"])
    deltas, done = gen(e, SamplingParams(stop=("\nUser:",)))
    assert "".join(deltas) == "Hello world"
    assert all("\n" not in d and "Us" not in d for d in deltas)
    assert done.reason == "stop"
    assert done.usage.completion_tokens == 6


def test_max_tokens_gives_length() -> None:
    e = ScriptedEngine()
    e.enqueue(["a", "b", "c", "d"])
    deltas, done = gen(e, SamplingParams(max_tokens=2))
    assert "".join(deltas) == "ab"
    assert (done.reason, done.usage.completion_tokens, done.usage.prompt_tokens) == ("length", 2, 3)


def test_context_window_caps_the_budget() -> None:
    e = ScriptedEngine(n_ctx=5)
    e.enqueue(["a", "b", "c", "d"])
    deltas, done = gen(e, SamplingParams(), prompt_len=3)
    assert "".join(deltas) == "ab"
    assert done.reason == "length"


def test_cancel_stops_between_tokens() -> None:
    e = ScriptedEngine()
    e.enqueue(["a", "b", "c"])
    cancel = threading.Event()
    it = run_generation(e, [1], SamplingParams(), cancel)
    assert next(it) == TextDelta("a")
    cancel.set()
    rest = list(it)
    assert isinstance(rest[-1], Finished) and rest[-1].reason == "cancelled"
    assert not [x for x in rest if isinstance(x, TextDelta)]


def test_partial_utf8_at_end_is_replaced_not_dropped_silently() -> None:
    e = ScriptedEngine()
    e.enqueue([b"ok", "🙂".encode()[:2]])
    deltas, _ = gen(e, SamplingParams())
    assert "".join(deltas) == "ok\ufffd"
