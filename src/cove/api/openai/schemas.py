"""Request bodies of the OpenAI-compatible API (field names as in OpenAI's API reference).

Unknown fields are ignored (clients send many); known fields are validated, and a wrong value
becomes a 400 naming the field. Every field of OpenAI's request is declared here and is either
honoured or refused with a 400 naming it (:func:`cove.api.openai.convert.check_supported`); only
fields that describe the caller (``user``, ``metadata``, ``store``, ``safety_identifier``) or
are cache hints (``prompt_cache_key``, ``prompt_cache_retention``) are accepted and unused.
Extensions beyond OpenAI: ``top_k``, ``min_p``, ``repeat_penalty`` (llama.cpp's sampling knobs).
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
    """A chat message. ``reasoning_content`` from earlier turns is accepted and dropped;
    ``name`` is given to the chat template (as Hugging Face's ``apply_chat_template`` does)."""

    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    reasoning_content: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class StreamOptions(_Body):
    """``include_usage``: a last chunk with the usage; ``include_obfuscation``: random padding
    in an ``obfuscation`` field of each chunk (OpenAI's default is true, Cove's false)."""

    include_usage: StrictBool = False
    include_obfuscation: StrictBool = False


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
    n: Int = Field(1, ge=1, le=128, description="answers to generate (at most the slots)")
    logit_bias: Any = None  # {token id string: -100..100}, checked in convert (param logit_bias)
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
    logprobs: StrictBool | None = None
    top_logprobs: Int | None = Field(None, ge=0, le=20)
    # refused unless absent (or their do-nothing value): see convert.check_supported
    audio: Any = None
    modalities: list[str] | None = None
    prediction: Any = None
    web_search_options: Any = None
    functions: Any = None
    function_call: Any = None
    service_tier: str | None = None
    verbosity: str | None = None
    # describe the caller, or hint at caching: accepted, unused
    store: StrictBool | None = None
    metadata: dict[str, str] | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    cove: dict[str, Any] | None = Field(
        None, description="Cove's extensions by name, e.g. {'search': {'collections': [...]}} "
        "(cove.api.extensions)")


class CompletionRequest(_Sampling):
    """``POST /v1/completions`` body (legacy completions; ``max_tokens`` defaults to 16)."""

    prompt: str | list[str] = Field(...)
    max_tokens: Int | None = Field(16, ge=1)
    echo: StrictBool = False
    suffix: str | None = None
    logprobs: Int | None = Field(None, ge=0, le=20)
    best_of: Int | None = Field(None, ge=1, le=128)
