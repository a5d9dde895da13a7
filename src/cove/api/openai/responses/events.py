"""A response being generated: the pipeline's items as Responses API streaming events, and the
``response`` object they build.

Event shapes follow the ``openai`` package (``openai/types/responses/response_*_event.py``);
every event carries ``type`` and an increasing ``sequence_number``. The order::

    response.created, response.in_progress
    per output item:  response.output_item.added
        reasoning:    response.content_part.added (reasoning_text),
                      response.reasoning_text.delta ..., response.reasoning_text.done,
                      response.content_part.done
                      (with reasoning.summary: response.reasoning_summary_part.added,
                      response.reasoning_summary_text.delta ..., ...text.done, ...part.done)
        message:      response.content_part.added (output_text),
                      response.output_text.delta ..., response.output_text.done,
                      response.content_part.done
        function_call: response.function_call_arguments.delta, ...arguments.done
                      response.output_item.done
    response.completed (status completed) or response.incomplete (max_output_tokens)

A failure mid-stream ends it with one ``response.failed`` event (status ``failed``, ``error``
``{"code": "server_error", "message"}``). Non-streaming requests run the same events and answer
with the final ``response``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from cove.api.openai.responses.convert import new_item_id
from cove.api.openai.responses.schemas import ResponseCreateRequest
from cove.chat import ChatDelta, ChatDone, ChatStream
from cove.engine.types import Usage
from cove.errors import CoveError
from cove.tools import ToolCalls

Event = dict[str, Any]


def base_response(body: ResponseCreateRequest, response_id: str, model: str) -> dict[str, Any]:
    """The ``response`` object before any output (status ``in_progress``), echoing the
    request's settings as OpenAI does."""
    fmt: dict[str, Any] = {"type": "text"}
    if body.text and body.text.format and body.text.format.type != "text":
        fmt = body.text.format.model_dump(by_alias=True, exclude_none=True)
    tools = [{"type": "function", "name": t.get("name"), "description": t.get("description"),
              "parameters": t.get("parameters") or {"type": "object", "properties": {}},
              "strict": True} for t in body.tools or []]  # Cove always enforces the schema
    choice = body.tool_choice if body.tool_choice is not None else "auto"
    reasoning = body.reasoning
    return {
        "id": response_id, "object": "response", "created_at": int(time.time()),
        "status": "in_progress", "background": False, "completed_at": None, "error": None,
        "incomplete_details": None, "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens, "max_tool_calls": body.max_tool_calls,
        "model": model, "output": [], "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": body.previous_response_id,
        "reasoning": {"effort": reasoning.effort if reasoning else None,
                      "summary": (reasoning.summary or reasoning.generate_summary)
                      if reasoning else None},
        "service_tier": "default", "store": body.store,
        "temperature": 0.8 if body.temperature is None else body.temperature,
        "text": {"format": fmt, "verbosity": (body.text.verbosity if body.text else None)
                 or "medium"},
        "tool_choice": choice, "tools": tools, "top_logprobs": 0,
        "top_p": 0.95 if body.top_p is None else body.top_p, "truncation": "disabled",
        "usage": None, "user": body.user, "metadata": body.metadata or {},
    }


def usage_json(usage: Usage) -> dict[str, Any]:
    """The Responses API's ``usage`` (reasoning tokens are not counted apart: 0; Cove has no
    paid cache writes: ``cache_write_tokens`` 0)."""
    return {"input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens,
                                     "cache_write_tokens": 0},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage.total_tokens}


def sse(event: Event) -> str:
    """One server-sent event as OpenAI frames it: ``event: <type>`` then ``data: <json>``."""
    return f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"


class ResponseRun:
    """Turns one admitted :class:`ChatStream` into events (:meth:`events`) while building
    :attr:`response`. ``summary`` streams the reasoning as a summary (``reasoning.summary``)
    as well as its content. ``on_end`` is called once, synchronously, with the final response
    (completed, incomplete, failed, or cancelled when the client went away)."""

    def __init__(self, response: dict[str, Any], stream: ChatStream, *, summary: bool = False,
                 on_end: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.response = response
        self._stream = stream
        self._summary = summary
        self._on_end = on_end
        self._seq = 0
        self._open: dict[str, Any] | None = None  # the reasoning or message item being written
        self._text: list[str] = []
        self._ended = False

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def _snapshot(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.response))  # events must not share later changes

    def _where(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"item_id": item["id"], "output_index": self.response["output"].index(item)}

    def _open_item(self, kind: str) -> list[Event]:
        if kind == "reasoning":
            item: dict[str, Any] = {"id": new_item_id("rs"), "type": "reasoning", "summary": [],
                                    "content": [], "status": "in_progress"}
        else:
            item = {"id": new_item_id("msg"), "type": "message", "role": "assistant",
                    "status": "in_progress", "content": []}
        self.response["output"].append(item)
        self._open, self._text = item, []
        where = self._where(item)
        events = [self._event("response.output_item.added", output_index=where["output_index"],
                              item=json.loads(json.dumps(item)))]
        if kind == "message":
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            events.append(self._event("response.content_part.added", **where, content_index=0,
                                      part=part))
        elif self._summary:
            events.append(self._event("response.reasoning_summary_part.added", **where,
                                      summary_index=0, part={"type": "summary_text", "text": ""}))
        else:
            events.append(self._event("response.content_part.added", **where, content_index=0,
                                      part={"type": "reasoning_text", "text": ""}))
        return events

    def _delta(self, text: str) -> Event:
        item = self._open
        assert item is not None
        self._text.append(text)
        where = self._where(item)
        if item["type"] == "message":
            return self._event("response.output_text.delta", **where, content_index=0,
                               delta=text, logprobs=[])
        if self._summary:
            return self._event("response.reasoning_summary_text.delta", **where,
                               summary_index=0, delta=text)
        return self._event("response.reasoning_text.delta", **where, content_index=0,
                           delta=text)

    def _settle(self, status: str) -> tuple[dict[str, Any], str] | None:
        """Give the open item its final text and ``status``; returns it and its text."""
        item = self._open
        if item is None:
            return None
        self._open = None
        text = "".join(self._text)
        item["status"] = status
        if item["type"] == "message":
            item["content"] = [{"type": "output_text", "text": text, "annotations": [],
                                "logprobs": []}]
        else:
            item["content"] = [{"type": "reasoning_text", "text": text}]
            if self._summary:
                item["summary"] = [{"type": "summary_text", "text": text}]
        return item, text

    def _close_item(self, status: str = "completed") -> list[Event]:
        settled = self._settle(status)
        if settled is None:
            return []
        item, text = settled
        where = self._where(item)
        if item["type"] == "message":
            events = [self._event("response.output_text.done", **where, content_index=0,
                                  text=text, logprobs=[]),
                      self._event("response.content_part.done", **where, content_index=0,
                                  part=item["content"][0])]
        elif self._summary:
            events = [self._event("response.reasoning_summary_text.done", **where,
                                  summary_index=0, text=text),
                      self._event("response.reasoning_summary_part.done", **where,
                                  summary_index=0, part=item["summary"][0])]
        else:
            events = [self._event("response.reasoning_text.done", **where, content_index=0,
                                  text=text),
                      self._event("response.content_part.done", **where, content_index=0,
                                  part=item["content"][0])]
        events.append(self._event("response.output_item.done",
                                  output_index=where["output_index"],
                                  item=json.loads(json.dumps(item))))
        return events

    def _calls(self, calls: ToolCalls) -> list[Event]:
        events = self._close_item()
        for call in calls.calls:
            item = {"id": new_item_id("fc"), "type": "function_call", "call_id": call.id,
                    "name": call.name, "arguments": "", "status": "in_progress"}
            self.response["output"].append(item)
            where = self._where(item)
            events.append(self._event("response.output_item.added",
                                      output_index=where["output_index"], item=dict(item)))
            events.append(self._event("response.function_call_arguments.delta", **where,
                                      delta=call.arguments))
            item |= {"arguments": call.arguments, "status": "completed"}
            events.append(self._event("response.function_call_arguments.done", **where,
                                      arguments=call.arguments))
            events.append(self._event("response.output_item.done",
                                      output_index=where["output_index"], item=dict(item)))
        return events

    def _finish(self, done: ChatDone) -> Event:
        incomplete = done.finish_reason == "length"
        self.response |= {
            "status": "incomplete" if incomplete else "completed",
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "usage": usage_json(done.usage),
            "completed_at": None if incomplete else int(time.time()),
        }
        self._end()
        kind = "response.incomplete" if incomplete else "response.completed"
        return self._event(kind, response=self._snapshot())

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            if self._on_end is not None:
                self._on_end(self._snapshot())

    async def events(self) -> AsyncIterator[Event]:
        """Every event of the response, in order (see the module docstring)."""
        yield self._event("response.created", response=self._snapshot())
        yield self._event("response.in_progress", response=self._snapshot())
        try:
            async for item in self._stream.items():
                if isinstance(item, ChatDelta):
                    kind = "message" if item.kind == "content" else "reasoning"
                    if self._open is None or self._open["type"] != kind:
                        for event in self._close_item() + self._open_item(kind):
                            yield event
                    yield self._delta(item.text)
                elif isinstance(item, ToolCalls):
                    for event in self._calls(item):
                        yield event
                elif isinstance(item, ChatDone):
                    if self._stream.cancelled:  # a cancelled generation ends like a finished one
                        break
                    status = "incomplete" if item.finish_reason == "length" else "completed"
                    for event in self._close_item(status):
                        yield event
                    yield self._finish(item)
        except Exception as e:  # noqa: BLE001 - the stream must end with response.failed
            message = e.message if isinstance(e, CoveError) else (
                f"generation failed: {type(e).__name__}")
            self._settle("incomplete")
            self.response |= {"status": "failed",
                              "error": {"code": "server_error", "message": message}}
            self._end()
            yield self._event("response.failed", response=self._snapshot())
        finally:
            self._stream.cancel()
            if not self._ended:  # the client went away: keep what was written
                self._settle("incomplete")
                self.response["status"] = "cancelled"
                self._end()

    def cancel(self) -> None:
        """Stop generating (the client went away); the response ends ``cancelled``."""
        self._stream.cancel()

    async def collect(self) -> dict[str, Any]:
        """Run to the end and return the final response object."""
        async for _ in self.events():
            pass
        return self.response
