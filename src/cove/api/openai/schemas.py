"""Request bodies of the OpenAI-compatible API (field names as in OpenAI's API reference).

Unknown fields are ignored (clients send many); known fields are validated, and a wrong value
becomes a 400 naming the field. Extensions beyond OpenAI: ``top_k``, ``min_p``, ``repeat_penalty``
(llama.cpp's sampling knobs).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected an integer, not a boolean")
    return value


Int = Annotated[int, BeforeValidator(_no_bool)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Body):
    """One part of a message's ``content`` list: ``{"type": "text", "text": ...}`` or an image."""

    type: Literal["text", "image_url", "input_image", "input_audio", "file", "refusal"]
    text: str | None = None
    refusal: str | None = None
    image_url: Any = None


class Message(_Body):
    """A chat message. ``reasoning_content`` from earlier turns is accepted and dropped."""

    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    reasoning_content: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class StreamOptions(_Body):
    include_usage: StrictBool = False


class ResponseFormat(_Body):
    """``{"type": "text" | "json_object" | "json_schema", "json_schema": {"name", "schema",
    "strict"}}``."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict[str, Any] | None = None


class Thinking(_Body):
    """DeepSeek's ``thinking: {"type": "enabled" | "disabled"}``; ``budget_tokens`` (as in
    Anthropic's API) is a reasoning budget."""

    type: Literal["enabled", "disabled"]
    budget_tokens: Int | None = Field(None, ge=1)


class _Sampling(_Body):
    model: str | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: Int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(None, gt=0.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    seed: Int | None = None
    stop: str | list[str] | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    n: Int = Field(1, ge=1, le=1, description="only n=1 is supported")
    logprobs: StrictBool | int | None = None
    user: str | None = None


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions`` body."""

    messages: list[Message] = Field(min_length=1)
    max_tokens: Int | None = Field(None, ge=1)
    max_completion_tokens: Int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None
    tools: Any = None  # validated by cove.tools.parse_tools (400s name tools[i]...)
    tool_choice: Any = None
    parallel_tool_calls: StrictBool | None = None
    thinking: Thinking | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    reasoning_budget: Int | None = Field(None, ge=1)


class CompletionRequest(_Sampling):
    """``POST /v1/completions`` body (legacy completions; ``max_tokens`` defaults to 16)."""

    prompt: str | list[str] = Field(...)
    max_tokens: Int | None = Field(16, ge=1)
    echo: StrictBool = False
    suffix: str | None = None
