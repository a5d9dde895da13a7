"""Conversation titles from a first message: cut at a word boundary with an ellipsis."""

from __future__ import annotations

from cove.chats.repo import auto_title


def test_short_text_is_kept_whole_on_one_line() -> None:
    assert auto_title("  Say hello\nto me  ", 60) == "Say hello to me"
    assert auto_title(" \n ", 60) == "New chat"


def test_long_text_is_cut_between_words_with_an_ellipsis() -> None:
    text = "Explain how the otters of the northern Pacific keep warm in winter water"
    title = auto_title(text, 30)
    assert title == "Explain how the otters of the…"
    assert len(title) <= 30 and text.startswith(title[:-1])
    assert auto_title("one two three", 8) == "one two…"  # cut exactly at a space
    assert auto_title("Supercalifragilistic", 8) == "Superca…"  # one long word: cut inside
