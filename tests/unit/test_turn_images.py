"""A web chat sends only its latest images (cove.chats.turns._latest_images): a long chat with
pictures stays within COVE_MAX_IMAGES instead of failing every later turn."""

from cove.chat import ChatMessage
from cove.chats.turns import _latest_images


def _m(content: str, *images: bytes) -> ChatMessage:
    return ChatMessage("user", content, images=list(images))


def test_the_newest_images_are_kept_and_older_ones_are_noted() -> None:
    history = [_m("first", b"a", b"b"), ChatMessage("assistant", "nice"), _m("", b"c", b"d"),
               _m("now", b"e")]
    out = _latest_images(history, 2)
    assert [m.images for m in out] == [[], [], [b"d"], [b"e"]]
    assert out[0].content.startswith("[2 earlier image(s) of this chat left out")
    assert out[0].content.endswith("\nfirst")
    assert out[1].content == "nice"
    assert out[2].content.startswith("[1 earlier image(s)") and "\n" not in out[2].content
    assert out[3] == history[3]


def test_within_the_limit_nothing_changes() -> None:
    history = [_m("one", b"a"), _m("two", b"b")]
    assert _latest_images(history, 2) == history
    assert _latest_images(history, 0)[1].images == []
