"""Turn generated text into tool calls, streaming plain answers through untouched.

Call text is read as it is generated (:class:`CallScanner`): each complete call of a JSON array
is known as soon as its closing brace comes, so a model that keeps repeating one call (small
models do, until ``max_tokens``) is stopped at the first identical repeat, and calls completed
before a cut (``max_tokens``) still come back as calls. Call text is never returned as content.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from cove.tools.spec import ToolCall, ToolCalls, ToolSpec

_DECODER = json.JSONDecoder()
TAG_OPEN, TAG_CLOSE = "<tool_call>", "</tool_call>"


def _call(item: Any, spec: ToolSpec) -> ToolCall | None:
    """``item`` as a call of a declared function, or None."""
    if not (isinstance(item, dict) and item.get("name") in spec.functions
            and isinstance(item.get("arguments", {}), dict)):
        return None
    return ToolCall(item["name"], json.dumps(item.get("arguments", {}), ensure_ascii=False))


def _key(call: ToolCall) -> tuple[str, str]:
    return call.name, json.dumps(json.loads(call.arguments), sort_keys=True)


def parse_calls(text: str, spec: ToolSpec) -> list[ToolCall] | None:
    """The calls in ``text`` (one JSON call object, an array of them, optionally wrapped in
    ``<tool_call>...</tool_call>``), identical calls once; None when it is not a valid call
    of a declared tool."""
    body = text.strip()
    if body.startswith(TAG_OPEN) and body.endswith(TAG_CLOSE):
        body = body[len(TAG_OPEN):-len(TAG_CLOSE)].strip()
    try:
        value = json.loads(body)
    except ValueError:
        return None
    calls: list[ToolCall] = []
    seen: set[tuple[str, str]] = set()
    for item in value if isinstance(value, list) else [value]:
        call = _call(item, spec)
        if call is None:
            return None
        if _key(call) not in seen:
            seen.add(_key(call))
            calls.append(call)
    return calls or None


class CallScanner:
    """Reads call text as it is generated (an object, or an array of objects, maybe inside
    ``<tool_call>`` tags).

    ``calls`` are the distinct complete calls so far; ``repeated`` turns true when a complete
    call equals an earlier one; ``closed`` when the object or array is complete.
    """

    def __init__(self, spec: ToolSpec) -> None:
        self.spec = spec
        self.text = ""
        self.calls: list[ToolCall] = []
        self.repeated = False
        self.closed = False
        self._seen: set[tuple[str, str]] = set()
        self._pos: int | None = None  # where the next array item may start
        self._array = False

    def feed(self, piece: str) -> None:
        """Add generated text and read every call it completes."""
        self.text += piece
        if self.closed or self.repeated or ("}" not in piece and "]" not in piece
                                            and self._pos is not None):
            return
        if self._pos is None and not self._start():
            return
        assert self._pos is not None
        while not (self.closed or self.repeated):
            pos = self._skip(self._pos)
            if pos >= len(self.text):
                return
            if self._array and self.text[pos] == "]":
                self.closed = True
                return
            try:
                item, end = _DECODER.raw_decode(self.text, pos)
            except ValueError:
                return  # incomplete (or not JSON: the grammar rules that out)
            self._pos = end
            self._add(item)
            if not self._array:
                self.closed = True

    def _start(self) -> bool:
        body = self.text.lstrip()
        offset = len(self.text) - len(body)
        if body.startswith(TAG_OPEN):
            rest = body[len(TAG_OPEN):]
            offset += len(TAG_OPEN) + len(rest) - len(rest.lstrip())
            body = rest.lstrip()
        elif TAG_OPEN.startswith(body):
            return False  # a tag still being written
        if not body:
            return False
        if body[0] not in "{[":
            self.closed = True  # a plain answer: nothing to read
            return False
        self._array = body[0] == "["
        self._pos = offset + (1 if self._array else 0)
        return True

    def repeats(self, piece: str) -> bool:
        """Feed ``piece``; whether a call has now been repeated verbatim (a
        :attr:`SamplingParams.watch <cove.engine.types.SamplingParams>` check, so that the
        engine stops such a generation at once)."""
        self.feed(piece)
        return self.repeated

    def _skip(self, pos: int) -> int:
        while pos < len(self.text) and (self.text[pos].isspace()
                                        or (self._array and self.text[pos] == ",")):
            pos += 1
        return pos

    def _add(self, item: Any) -> None:
        call = _call(item, self.spec)
        if call is None:
            return
        if _key(call) in self._seen:
            self.repeated = True
            return
        self._seen.add(_key(call))
        self.calls.append(call)


async def tool_events(events: AsyncIterator[Any], spec: ToolSpec) -> AsyncIterator[Any]:
    """Pass the pipeline's ChatDelta/ChatDone items through, except a tool call: content that
    starts with ``{``, ``[`` or ``<`` (or any content when a call is required) is held back
    and replaced by one :class:`ToolCalls` item (identical calls once) and a ``ChatDone``
    whose ``finish_reason`` is ``tool_calls`` — or ``length`` when ``max_tokens`` cut the
    answer after some complete calls: those still come back, the partial one is dropped, and
    call text is never returned as content. Reasoning is never held back. Log-probabilities
    of held text travel with it. (The engine stops a generation that repeats a call:
    :meth:`CallScanner.repeats` as the ``watch`` check.)"""
    from cove.chat import ChatDelta

    scanner = CallScanner(spec)
    logprobs: tuple[Any, ...] = ()  # of the held text (when the request asked for them)
    mode = "hold" if spec.choice != "auto" else "undecided"
    async for item in events:
        kind = getattr(item, "kind", None)
        if kind == "content" and mode != "pass":
            scanner.feed(item.text)
            logprobs += item.logprobs
            if mode == "undecided":
                start = scanner.text.lstrip()
                if start:
                    mode = "hold" if start[0] in "{[<" else "pass"
                    if mode == "pass":
                        yield replace(item, text=scanner.text, logprobs=logprobs)
            continue
        if kind is None and hasattr(item, "finish_reason"):  # ChatDone
            if mode == "hold":
                calls = parse_calls(scanner.text, spec) or scanner.calls
                if calls:
                    cut = item.finish_reason == "length" and not (scanner.closed
                                                                  or scanner.repeated)
                    yield ToolCalls(calls)
                    yield replace(item, finish_reason="length" if cut else "tool_calls")
                    return
                if scanner.text and not scanner.text.lstrip().startswith(("{", "[", "<")):
                    # a required call never came
                    yield ChatDelta("content", scanner.text, logprobs)
            elif mode == "undecided" and (scanner.text or logprobs):  # only white space came
                yield ChatDelta("content", scanner.text, logprobs)
        yield item
