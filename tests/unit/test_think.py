"""Reasoning parser: every case whole, split at every position, and char by char, gives the same."""

from __future__ import annotations

import pytest

from cove.reasoning import ThinkParser, split_reasoning, strip_reasoning

# (output, start_in_reasoning, expected reasoning, expected content)
CASES = [
    ("<think>Let me add 2 and 2.</think>The answer is 4.", False, "Let me add 2 and 2.",
     "The answer is 4."),
    ("<think>\nstep one\nstep two\n</think>\n\nFour.", False, "step one\nstep two", "Four."),
    ("  <think>a</think>b", False, "a", "b"),
    ("Just an answer.", False, "", "Just an answer."),
    ("Answer with <think> inside</think> text", False, "",
     "Answer with <think> inside</think> text"),
    # opening tag missing because the template already wrote it
    ("reasoning only here</think>Final.", True, "reasoning only here", "Final."),
    ("\nthinking 1 < 2 and </thin k>\n</think>\n\nOK", True, "thinking 1 < 2 and </thin k>",
     "OK"),
    ("<think>opened anyway</think>done", True, "opened anyway", "done"),
    # cut by max_tokens inside the thinking: the reasoning is kept
    ("<think>I was thinking about", False, "", "") ,
    ("still thinking  ", True, "still thinking", ""),
    ("<thinking>not a tag</thinking>", False, "", "<thinking>not a tag</thinking>"),
    ("<think></think>empty", False, "", "empty"),
    ("", False, "", ""),
    ("   ", True, "", ""),
    ("<think>emoji 🤔 and 中文</think>答案 ✅", False, "emoji 🤔 and 中文", "答案 ✅"),
    ("<think>a\n\n  b  \n</think>  c  d ", False, "a\n\n  b", "c  d "),
]
CASES[8] = ("<think>I was thinking about", False, "I was thinking about", "")


def run(pieces: list[str], start: bool) -> tuple[str, str, list[tuple[str, str]]]:
    p = ThinkParser(start_in_reasoning=start)
    out: list[tuple[str, str]] = []
    for piece in pieces:
        out += p.feed(piece)
    out += p.flush()
    r = "".join(t for k, t in out if k == "reasoning")
    c = "".join(t for k, t in out if k == "content")
    return r, c, out


@pytest.mark.parametrize("text,start,reasoning,content", CASES)
def test_whole(text: str, start: bool, reasoning: str, content: str) -> None:
    assert split_reasoning(text, start) == (reasoning, content)


@pytest.mark.parametrize("text,start,reasoning,content", CASES)
def test_every_split_gives_the_same(text: str, start: bool, reasoning: str, content: str) -> None:
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            r, c, parts = run([text[:i], text[i:j], text[j:]], start)
            assert (r, c) == (reasoning, content), (i, j)
            for kind, piece in parts:
                assert piece, "no empty deltas"
                assert kind in ("reasoning", "content")
                assert "<think>" not in piece or kind == "content" and "<think>" in content
                assert "</think>" not in piece or "</think>" in content


@pytest.mark.parametrize("text,start,reasoning,content", CASES)
def test_char_by_char(text: str, start: bool, reasoning: str, content: str) -> None:
    r, c, _ = run(list(text), start)
    assert (r, c) == (reasoning, content)


def test_reasoning_never_follows_content() -> None:
    _, _, parts = run(list("<think>x</think>y<think>z</think>"), False)
    kinds = [k for k, _ in parts]
    assert kinds == sorted(kinds, key=lambda k: k != "reasoning")


def test_strip_reasoning_from_history() -> None:
    assert strip_reasoning("<think>secret</think>\n\nHello") == "Hello"
    assert strip_reasoning("no reasoning here") == "no reasoning here"
    assert strip_reasoning("inner</think>Answer") == "Answer"
