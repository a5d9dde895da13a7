"""Anthropic's server-sent events for a streamed message (the Messages API's "Streaming
messages" reference): one ``event: <type>`` line and one ``data: <json>`` line per event."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from cove.api.anthropic.convert import new_id, stop_reason, tool_use_block, usage_dict
from cove.api.errors import anthropic_sse_error
from cove.api.streams import ending_in_error
from cove.pipeline import ChatDelta, ChatDone, ChatStream
from cove.tools import ToolCall, ToolCalls


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class _Blocks:
    """The content-block events of one streamed message: opens a block when the kind of
    output changes and closes the previous one (a thinking block with its signature)."""

    def __init__(self) -> None:
        self.index = -1
        self.open: str | None = None

    def start(self, block: dict[str, Any]) -> list[str]:
        out = self.stop()
        self.index += 1
        self.open = block["type"]
        return [*out, _event("content_block_start", {"type": "content_block_start",
                                                     "index": self.index,
                                                     "content_block": block})]

    def delta(self, delta: dict[str, Any]) -> str:
        return _event("content_block_delta", {"type": "content_block_delta",
                                              "index": self.index, "delta": delta})

    def stop(self) -> list[str]:
        if self.open is None:
            return []
        out = []
        if self.open == "thinking":
            out.append(self.delta({"type": "signature_delta", "signature": ""}))
        self.open = None
        return [*out, _event("content_block_stop", {"type": "content_block_stop",
                                                    "index": self.index})]

    def text(self, item: ChatDelta) -> list[str]:
        if item.kind == "reasoning":
            kind, delta = "thinking", {"type": "thinking_delta", "thinking": item.text}
            block: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            kind, delta = "text", {"type": "text_delta", "text": item.text}
            block = {"type": "text", "text": ""}
        out = self.start(block) if self.open != kind else []
        return [*out, self.delta(delta)]

    def tool_use(self, call: ToolCall) -> list[str]:
        block = tool_use_block(call)
        arguments = json.dumps(block.pop("input"), ensure_ascii=False)
        out = self.start({**block, "input": {}})
        out.append(self.delta({"type": "input_json_delta", "partial_json": arguments}))
        return [*out, *self.stop()]


def sse_stream(stream: ChatStream) -> AsyncIterator[str]:
    """Anthropic's streaming format: ``message_start``, ``ping``, per content block
    ``content_block_start`` / ``content_block_delta`` (``text_delta``, ``thinking_delta`` then
    ``signature_delta``, ``input_json_delta``) / ``content_block_stop``, then
    ``message_delta`` (``stop_reason``, ``stop_sequence``, ``usage``) and ``message_stop``.
    Each is an ``event: <type>`` line and a ``data:`` line. A failure mid-stream ends the
    stream with one ``event: error`` and no ``message_stop``.
    """
    return ending_in_error(_events(stream), stream, anthropic_sse_error)


async def _events(stream: ChatStream) -> AsyncIterator[str]:
    blocks = _Blocks()
    yield _event("message_start", {"type": "message_start", "message": {
        "id": new_id(), "type": "message", "role": "assistant", "model": stream.model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": stream.prompt_tokens, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 0}}})
    yield _event("ping", {"type": "ping"})
    async for item in stream.items():
        if isinstance(item, ChatDelta) and item.text:
            for e in blocks.text(item):
                yield e
        elif isinstance(item, ToolCalls):
            for call in item.calls:
                for e in blocks.tool_use(call):
                    yield e
        elif isinstance(item, ChatDone):
            if blocks.index < 0:  # no output: one empty text block, as non-streamed
                for e in blocks.start({"type": "text", "text": ""}):
                    yield e
            for e in blocks.stop():
                yield e
            reason = stop_reason(item.finish_reason, item.stop_sequence)
            yield _event("message_delta", {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence":
                          item.stop_sequence if reason == "stop_sequence" else None},
                "usage": usage_dict(item.usage)})
            yield _event("message_stop", {"type": "message_stop"})
