"""OpenAI's ``logprobs`` objects from the engine's :class:`~cove.engine.types.TokenLogprob`.

Chat (``choices[i].logprobs``): ``{"content": [{"token", "logprob", "bytes", "top_logprobs":
[{"token", "logprob", "bytes"}]}], "refusal": null}``. Completions: ``{"tokens",
"token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}``, where each
``top_logprobs`` dict holds the asked-for alternatives plus the sampled token (so up to
``logprobs + 1`` entries, as OpenAI documents). Token texts are their bytes decoded as UTF-8
(a token holding part of a character shows U+FFFD; ``bytes`` has the exact bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cove.engine.types import TokenLogprob


def _text(piece: bytes) -> str:
    return piece.decode("utf-8", errors="replace")


def chat_logprobs(entries: Sequence[TokenLogprob]) -> dict[str, Any]:
    """The chat ``logprobs`` object of ``entries`` (in generation order)."""
    return {
        "content": [
            {
                "token": _text(e.token),
                "logprob": e.logprob,
                "bytes": list(e.token),
                "top_logprobs": [{"token": _text(t), "logprob": lp, "bytes": list(t)}
                                 for t, lp in e.top],
            }
            for e in entries
        ],
        "refusal": None,
    }


def completion_logprobs(entries: Sequence[TokenLogprob]) -> dict[str, Any]:
    """The legacy completions ``logprobs`` object of ``entries``; ``text_offset`` is each
    token's start in the choice's generated text, in characters."""
    tops = []
    for e in entries:
        top = {_text(t): lp for t, lp in e.top}
        top.setdefault(_text(e.token), e.logprob)
        tops.append(top)
    return {
        "tokens": [_text(e.token) for e in entries],
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": tops,
        "text_offset": [e.offset for e in entries],
    }
