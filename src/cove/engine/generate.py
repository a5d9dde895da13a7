"""Turn one sequence's sampled tokens into safe text, and decide when it ends.

This is the one place that decides how a generation ends: end-of-generation token, stop sequence,
``max_tokens`` or a full context window. It decodes bytes incrementally so that a multi-byte UTF-8
character split across tokens (emoji, CJK) is emitted whole, once; undecodable bytes become
U+FFFD, and a character left incomplete when the generation ends is dropped.

When the request asks for log-probabilities, it also pairs each token's
:class:`~cove.engine.types.TokenLogprob` with the text: an entry is released with the piece in
which the token's text is complete, carries the character offset where its text starts, and
the tokens of a stop sequence (text never emitted) are dropped, as llama-server does.
"""

from __future__ import annotations

import codecs
from dataclasses import replace

from cove.engine.stops import StopMatcher
from cove.engine.types import FinishReason, SamplingParams, TokenLogprob


class TextStream:
    """Per-sequence text state.

    Args:
        params: the request's sampling parameters (``max_tokens``, ``stop``, ``watch``).
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
        self._track = params.logprobs is not None
        self._decoded = 0  # characters out of the decoder so far
        self._emitted = 0  # characters returned by push so far
        self._end = 0  # where the last token's text ends (counting a character it began)
        self._waiting: list[tuple[int, int, TokenLogprob]] = []  # (start, end, entry)
        self._ready: list[TokenLogprob] = []
        self._watch = params.watch

    def push(self, piece: bytes, is_end: bool,
             logprob: TokenLogprob | None = None) -> tuple[str, FinishReason | None]:
        """Add one sampled token (with its log-probabilities, when the request asked for
        them). Returns the text now safe to emit and, if the sequence is over, why
        (``"stop"`` or ``"length"``); the final text already includes the tail."""
        if is_end:
            return self._settle(self.tail(), True), "stop"
        self.produced += 1
        decoded = self._decoder.decode(piece)
        if self._track:
            self._decoded += len(decoded)
            start, self._end = self._end, self._decoded + bool(self._decoder.getstate()[0])
            if logprob is not None:
                self._waiting.append((start, self._end, logprob))
        text, stopped = self._stops.feed(decoded)
        if stopped:
            return self._settle(text, True), "stop"
        if text and self._watch is not None and self._watch(text):
            return self._settle(text + self.tail(), True), "stop"
        if self.produced >= self.budget:
            return self._settle(text + self.tail(), True), "length"
        return self._settle(text, False), None

    def take_logprobs(self) -> tuple[TokenLogprob, ...]:
        """The entries released since the last call, in order, each with its ``offset``."""
        out, self._ready = tuple(self._ready), []
        return out

    def _settle(self, text: str, final: bool) -> str:
        """Count ``text`` as emitted and release the entries whose text it completes; at the
        end also a token whose text was cut (it began in the emitted text), dropping the rest
        (a stop sequence's tokens)."""
        if not self._track:
            return text
        self._emitted += len(text)
        waiting = self._waiting
        while waiting and (waiting[0][1] <= self._emitted
                           or (final and waiting[0][0] < self._emitted)):
            start, _, entry = waiting.pop(0)
            self._ready.append(replace(entry, offset=start))
        if final:
            waiting.clear()
        return text

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
