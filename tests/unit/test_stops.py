"""Stop sequences held back across pieces."""

from __future__ import annotations

import pytest

from cove.engine.stops import StopMatcher


def feed_all(stops: list[str], pieces: list[str]) -> tuple[str, bool]:
    m = StopMatcher(stops)
    out = ""
    for p in pieces:
        text, stopped = m.feed(p)
        out += text
        if stopped:
            return out, True
    return out + m.flush(), False


@pytest.mark.parametrize(
    "text,stops,expected,stopped",
    [
        ("Hello\nUser: hi", ["\nUser:"], "Hello", True),
        ("abcabd", ["abd"], "abc", True),
        ("no stop here", ["STOP"], "no stop here", False),
        ("ends with ST", ["STOP"], "ends with ST", False),
        ("x END y", ["END", "x"], "", True),
        ("aaab", ["aab"], "a", True),
        ("🙂 stop 🙂", ["stop"], "🙂 ", True),
    ],
)
def test_every_split(text: str, stops: list[str], expected: str, stopped: bool) -> None:
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            assert feed_all(stops, [text[:i], text[i:j], text[j:]]) == (expected, stopped)


def test_held_text_never_emitted_before_decided() -> None:
    m = StopMatcher(["</s>"])
    assert m.feed("hi </") == ("hi ", False)
    assert m.feed("x") == ("</x", False)


def test_the_stop_that_matched_is_kept() -> None:
    m = StopMatcher(["END", "x y"])
    assert m.matched is None
    assert m.feed("a x") == ("a ", False)
    assert m.feed(" y END") == ("", True)
    assert m.matched == "x y"  # the earliest in the text, not the first in the list
    assert StopMatcher(["Z"]).matched is None
