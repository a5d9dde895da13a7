"""TextStream: UTF-8 safety, stops across tokens, limits."""

from __future__ import annotations

from cove.engine.generate import TextStream
from cove.engine.types import SamplingParams, TokenLogprob


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


# -- log-probabilities paired with the text -------------------------------------------------------


def feed_logprobs(pieces: list[bytes], params: SamplingParams,
                  ) -> tuple[list[tuple[str, list[tuple[bytes, int]]]], str | None]:
    """Push ``pieces`` each with an entry; ``(text, [(token, offset)])`` per push."""
    ts = TextStream(params, 3, 2048)
    out = []
    reason = None
    for p in [*pieces, None]:
        entry = None if p is None else TokenLogprob(p, -1.0)
        text, reason = ts.push(p or b"", p is None, entry)
        out.append((text, [(e.token, e.offset) for e in ts.take_logprobs()]))
        if reason:
            break
    return out, reason


def test_logprobs_come_with_the_text_of_their_token() -> None:
    out, reason = feed_logprobs([b"Hel", b"lo", b" you"], SamplingParams(logprobs=0))
    assert out == [("Hel", [(b"Hel", 0)]), ("lo", [(b"lo", 3)]), (" you", [(b" you", 5)]),
                   ("", [])]
    assert reason == "stop"


def test_logprobs_of_a_split_character_wait_for_the_whole_character() -> None:
    smile = "🙂".encode()
    out, _ = feed_logprobs([b"a", smile[:2], smile[2:], b"b"], SamplingParams(logprobs=0))
    assert out[1] == ("", [])  # half a character: nothing to show yet
    assert out[2] == ("🙂", [(smile[:2], 1), (smile[2:], 2)])
    assert out[3] == ("b", [(b"b", 2)])


def test_logprobs_of_held_stop_text_follow_it_and_stop_tokens_are_dropped() -> None:
    pieces = [b"Hi", b" S", b"T", b"x", b" ST", b"OP", b" more"]
    out, reason = feed_logprobs(pieces, SamplingParams(stop=("STOP",), logprobs=0))
    assert reason == "stop"
    text = "".join(t for t, _ in out)
    entries = [e for _, es in out for e in es]
    assert text == "Hi STx "
    # " ST" straddles the end of the text: it began in it, so it is kept; "OP" is dropped
    assert entries == [(b"Hi", 0), (b" S", 2), (b"T", 4), (b"x", 5), (b" ST", 6)]
    assert out[1] == (" ", [])  # "S" may start "STOP": it and the logprob of " S" wait


def test_logprobs_at_max_tokens_and_forced_pieces_without_entry() -> None:
    ts = TextStream(SamplingParams(max_tokens=3, logprobs=2), 3, 2048)
    assert ts.push(b"a", False, TokenLogprob(b"a", -1.0)) == ("a", None)
    assert ts.push(b"bc", False) == ("bc", None)  # e.g. a forced continuation: no entry
    assert ts.push(b"d", False, TokenLogprob(b"d", -2.0)) == ("d", "length")
    assert [(e.token, e.offset) for e in ts.take_logprobs()] == [(b"a", 0), (b"d", 3)]


def test_no_tracking_without_logprobs() -> None:
    ts = TextStream(SamplingParams(), 3, 2048)
    ts.push(b"a", False, TokenLogprob(b"a", -1.0))
    assert ts.take_logprobs() == ()
