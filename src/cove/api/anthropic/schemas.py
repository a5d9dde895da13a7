"""Request bodies of the Anthropic Messages API (field names as in Anthropic's API reference,
``POST /v1/messages`` and ``POST /v1/messages/count_tokens``).

Unknown fields are ignored (clients send many: ``service_tier``, ``container``, ``mcp_servers``,
...); known fields are validated, and a wrong value is a 400 naming the field. Content blocks
are one loose model checked block by block in :mod:`cove.api.anthropic.convert`, so an error
names ``messages[i].content[j]`` rather than one of a union's alternatives; ``tools`` and
``tool_choice`` are checked there too.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from cove.api.openai.schemas import Int


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Block(_Body):
    """One content block. ``type`` is ``text``, ``image``, ``tool_use`` (``id``, ``name``,
    ``input``), ``tool_result`` (``tool_use_id``, ``content`` as a string or blocks,
    ``is_error``), ``thinking`` (``thinking``, ``signature``) or ``redacted_thinking``
    (``data``); others are refused in convert."""

    type: str
    text: Any = None
    source: Any = None
    id: Any = None
    name: Any = None
    input: Any = None
    tool_use_id: Any = None
    content: Any = None
    is_error: StrictBool | None = None
    thinking: Any = None
    signature: Any = None
    data: Any = None
    cache_control: Any = None
    citations: Any = None


class Message(_Body):
    """A turn: ``role`` ``user`` or ``assistant``; ``content`` a string or a list of blocks."""

    role: Literal["user", "assistant"]
    content: str | list[Block]


class Thinking(_Body):
    """``{"type": "enabled", "budget_tokens": N}`` (a reasoning budget in tokens),
    ``{"type": "disabled"}``, or ``{"type": "adaptive"}`` / ``{"type": "between_tools"}`` (the
    model's default). ``display`` is accepted; reasoning is always returned in full."""

    type: Literal["enabled", "disabled", "adaptive", "between_tools"]
    budget_tokens: Int | None = Field(None, ge=1)
    display: Literal["summarized", "omitted"] | None = None


class OutputFormat(_Body):
    """``{"type": "json_schema", "schema": {...}}``: structured output."""

    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(_Body):
    """``output_config``: ``format`` constrains the answer to a JSON schema (by grammar, as
    OpenAI's ``response_format``); ``effort`` is accepted and does nothing."""

    effort: str | None = None
    format: OutputFormat | None = None


class Metadata(_Body):
    """``metadata.user_id``: accepted and not stored."""

    user_id: str | None = None


class Prompt(_Body):
    """What both routes render: model, system, messages, tools, thinking."""

    model: str = Field(description="model name; an empty string means the default model")
    messages: list[Message] = Field(min_length=1)
    system: str | list[Block] | None = None
    tools: Any = None  # checked by convert (400s name tools[i]...)
    tool_choice: Any = None
    thinking: Thinking | None = None


class MessagesRequest(Prompt):
    """``POST /v1/messages``. ``temperature`` and ``top_p`` take Anthropic's 0-1 range; the
    sampling defaults are llama.cpp's (temperature 0.8), as on the OpenAI routes."""

    max_tokens: Int = Field(ge=1)
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, ge=0.0, le=1.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: Int | None = Field(None, ge=0)
    metadata: Metadata | None = None
    output_config: OutputConfig | None = None
    stream: StrictBool = False


class CountTokensRequest(Prompt):
    """``POST /v1/messages/count_tokens``: the prompt part of a messages request."""
