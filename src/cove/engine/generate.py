"""Turn an engine's raw token stream into safe text events.

This is the one place that decides how a generation ends: end-of-generation token, stop sequence,
``max_tokens``, a full context window, or cancellation. It decodes bytes incrementally so that a
multi-byte UTF-8 character split across tokens (emoji, CJK) is emitted whole, once.
"""

from __future__ import annotations

import codecs
import threading
from collections.abc import Iterator

from cove.engine.stops import StopMatcher
from cove.engine.types import (
    Engine,
    Finished,
    FinishReason,
    GenerationEvent,
    SamplingParams,
    TextDelta,
    Usage,
)


def run_generation(
    engine: Engine,
    prompt: list[int],
    params: SamplingParams,
    cancel: threading.Event | None = None,
) -> Iterator[GenerationEvent]:
    """Generate after ``prompt`` (token ids); yield :class:`TextDelta` events, then one
    :class:`Finished`.

    The completion budget is ``params.max_tokens`` capped by the room left in the context window
    (``engine.info.n_ctx - len(prompt)``); reaching either ends with reason ``"length"``.
    A matched stop sequence ends with ``"stop"`` and is not emitted; so does the model's
    end-of-generation token. A set ``cancel`` event ends with ``"cancelled"``.
    """
    cancel = cancel or threading.Event()
    room = engine.info.n_ctx - len(prompt)
    budget = room if params.max_tokens is None else min(params.max_tokens, room)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    stops = StopMatcher(params.stop)
    produced = 0
    reason: FinishReason = "length"

    if budget <= 0:
        yield Finished("length", Usage(len(prompt), 0))
        return
    tokens = engine.tokens(prompt, params, cancel)
    try:
        for tok in tokens:
            if cancel.is_set():
                reason = "cancelled"
                break
            if tok.is_end:
                reason = "stop"
                break
            produced += 1
            text, stopped = stops.feed(decoder.decode(tok.piece))
            if text:
                yield TextDelta(text)
            if stopped:
                reason = "stop"
                break
            if produced >= budget:
                reason = "length"
                break
        else:
            reason = "cancelled" if cancel.is_set() else "length"
    finally:
        close = getattr(tokens, "close", None)
        if close is not None:
            close()
    if reason != "cancelled" and not stops.stopped:
        tail, stopped = stops.feed(decoder.decode(b"", final=True))
        tail += stops.flush()
        if tail:
            yield TextDelta(tail)
    yield Finished(reason, Usage(len(prompt), produced))
