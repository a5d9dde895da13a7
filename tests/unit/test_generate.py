"""TextStream: UTF-8 safety, stops across tokens, limits."""

from __future__ import annotations

from cove.engine.generate import TextStream
from cove.engine.types import SamplingParams


def feed(pieces: list[bytes], params: SamplingParams, prompt_len: int = 3,
         n_ctx: int = 2048) -> tuple[list[str], str | None, int]:
    ts = TextStream(params, prompt_len, n_ctx)
    out: list[str] = []
    reason = None
    for p in pieces:
        text, reason = ts.push(p, False)
        if text:
            out.append(text)
        if reason:
            break
    if reason is None:
        text, reason = ts.push(b"", True)
        if text:
            out.append(text)
    return out, reason, ts.produced


def test_multibyte_characters_split_across_tokens_arrive_whole() -> None:
    text = "héllo 🤔 中文 ✅"
    raw = text.encode()
    out, reason, n = feed([raw[i : i + 1] for i in range(len(raw))], SamplingParams())
    assert "".join(out) == text
    assert all("\ufffd" not in d for d in out)
    assert (reason, n) == ("stop", len(raw))


def test_stop_spanning_tokens_is_not_leaked() -> None:
    pieces = [b"Hello", b" wor", b"ld\n", b"Us", b"er", b":", b" more"]
    out, reason, n = feed(pieces, SamplingParams(stop=("\nUser:",)))
    assert "".join(out) == "Hello world"
    assert all("\n" not in d and "Us" not in d for d in out)
    assert (reason, n) == ("stop", 6)


def test_max_tokens_gives_length() -> None:
    out, reason, n = feed([b"a", b"b", b"c", b"d"], SamplingParams(max_tokens=2))
    assert ("".join(out), reason, n) == ("ab", "length", 2)


def test_context_window_caps_the_budget() -> None:
    out, reason, _ = feed([b"a", b"b", b"c", b"d"], SamplingParams(), prompt_len=3, n_ctx=5)
    assert ("".join(out), reason) == ("ab", "length")


def test_character_cut_off_at_the_end_is_dropped() -> None:
    # the answer ends (end token or max_tokens) half-way through an emoji: no U+FFFD is sent,
    # as llama.cpp's server does; bytes that can never be valid are still replaced
    out, _, _ = feed([b"ok", "🙂".encode()[:2]], SamplingParams())
    assert "".join(out) == "ok"
    out, reason, _ = feed([b"ok", "🙂".encode()[:3], b"x"], SamplingParams(max_tokens=2))
    assert ("".join(out), reason) == ("ok", "length")
    out, _, _ = feed([b"a\xff", b"b"], SamplingParams())
    assert "".join(out) == "a\ufffdb"


def test_held_stop_prefix_released_at_end() -> None:
    out, reason, _ = feed([b"abc", b" ST"], SamplingParams(stop=("STOP",)))
    assert ("".join(out), reason) == ("abc ST", "stop")


def test_the_stop_sequence_that_ended_the_text_is_told() -> None:
    ts = TextStream(SamplingParams(stop=("###", "\nUser:")), 3, 2048)
    assert [ts.push(p, False) for p in (b"Hi\nUs", b"er: x")] == [("Hi", None), ("", "stop")]
    assert ts.stop_sequence == "\nUser:"
    ts = TextStream(SamplingParams(stop=("###",)), 3, 2048)
    assert ts.push(b"Hi", True) == ("", "stop") and ts.stop_sequence is None
