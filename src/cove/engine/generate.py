"""Turn one sequence's sampled tokens into safe text, and decide when it ends.

This is the one place that decides how a generation ends: end-of-generation token, stop sequence,
``max_tokens`` or a full context window. It decodes bytes incrementally so that a multi-byte UTF-8
character split across tokens (emoji, CJK) is emitted whole, once; undecodable bytes become
U+FFFD, and a character left incomplete when the generation ends is dropped.
"""

from __future__ import annotations

import codecs

from cove.engine.stops import StopMatcher
from cove.engine.types import FinishReason, SamplingParams


class TextStream:
    """Per-sequence text state.

    Args:
        params: the request's sampling parameters (``max_tokens``, ``stop``).
        prompt_len: prompt length in tokens.
        n_ctx: the sequence's context window; the budget is ``max_tokens`` capped by
            ``n_ctx - prompt_len`` (reaching either ends with ``"length"``).
    """

    def __init__(self, params: SamplingParams, prompt_len: int, n_ctx: int) -> None:
        room = n_ctx - prompt_len
        self.budget = room if params.max_tokens is None else min(params.max_tokens, room)
        self.produced = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = StopMatcher(params.stop)

    def push(self, piece: bytes, is_end: bool) -> tuple[str, FinishReason | None]:
        """Add one sampled token. Returns the text now safe to emit and, if the sequence is
        over, why (``"stop"`` or ``"length"``); the final text already includes the tail."""
        if is_end:
            return self.tail(), "stop"
        self.produced += 1
        text, stopped = self._stops.feed(self._decoder.decode(piece))
        if stopped:
            return text, "stop"
        if self.produced >= self.budget:
            return text + self.tail(), "length"
        return text, None

    @property
    def stop_sequence(self) -> str | None:
        """The stop sequence that ended the text (None: none did)."""
        return self._stops.matched

    def tail(self) -> str:
        """Text held back at the end (a possible stop start). A character cut off by the end
        is dropped rather than sent as U+FFFD, as llama.cpp's server does."""
        if self._stops.stopped:
            return ""
        self._decoder.reset()
        return self._stops.flush()
