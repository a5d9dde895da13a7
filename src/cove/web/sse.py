"""The web app's server-sent events: one JSON object per ``data:`` line, with a ``type``.

``start`` (``conversation``, ``user_message``, ``assistant_message_id``; absent for guests;
``cove``: the chat extensions' results, such as ``{"search": {"sources", "warnings"}}``, when
the request asked for any), then ``delta`` (``kind`` ``reasoning``/``content``, ``text``), then
``done`` (``finish_reason``, ``usage``, and ``cove`` revised for the complete answer, e.g. with
``search.cited``) — or one ``error`` event (``error``: OpenAI's error object) that ends the
stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

from cove.api.errors import as_cove_error, openai_error_body
from cove.pipeline import ChatDelta, ChatDone

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event(obj: dict[str, Any]) -> str:
    """One SSE ``data:`` event."""
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def encode(
    start: dict[str, Any] | None, events: AsyncIterable[ChatDelta | ChatDone],
    done_extra: Callable[[str], dict[str, Any]] | None = None,
) -> AsyncIterator[str]:
    """SSE text for a chat: the ``start`` event (if any), deltas, ``done`` or ``error``;
    ``done_extra(answer_text)`` gives more fields for the ``done`` event."""
    if start is not None:
        yield event({"type": "start", **start})
    text: list[str] = []
    try:
        async for item in events:
            if isinstance(item, ChatDelta):
                if item.kind == "content":
                    text.append(item.text)
                yield event({"type": "delta", "kind": item.kind, "text": item.text})
            else:
                extra = done_extra("".join(text)) if done_extra is not None else {}
                yield event({"type": "done", "finish_reason": item.finish_reason,
                             "usage": {"prompt_tokens": item.usage.prompt_tokens,
                                       "completion_tokens": item.usage.completion_tokens},
                             **extra})
    except Exception as e:  # noqa: BLE001 - the stream must end with an error event
        # a server error shows only its log reference (cove.api.errors.public)
        yield event({"type": "error", **openai_error_body(as_cove_error(e))})
