"""Request bodies of OpenAI's Responses API (``POST /v1/responses``), field names as in OpenAI's
API reference (``openai/types/responses/response_create_params.py`` of the ``openai`` package).

Unknown fields are ignored (clients send many); known fields are validated, and a wrong value is
a 400 naming the field (``input[2].content[0].type``). Each item of ``input`` is validated as an
:data:`InputItem` by convert, so that its errors name ``input[i]`` (a union of item types
would name pydantic's union members instead). What Cove cannot do is refused in
:mod:`cove.api.openai.responses.convert` with a 400 naming the field, never silently ignored:
non-function tools, ``background``, ``conversation``, ``truncation: "auto"``, logprobs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictBool, Tag

from cove.api.openai.schemas import Int

ROLES = ("user", "system", "developer", "assistant")


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Body):
    """One part of a message's ``content``: ``input_text`` / ``output_text`` (``text``),
    ``refusal`` (``refusal``), ``input_image`` (``image_url`` or ``file_id``) or
    ``input_file``/``input_audio`` (refused: no model here reads them)."""

    type: Literal["input_text", "output_text", "refusal", "input_image", "input_file",
                  "input_audio", "summary_text", "reasoning_text"]
    text: str | None = None
    refusal: str | None = None
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


class MessageItem(_Body):
    """``{"type": "message", "role", "content"}``: ``content`` is a string or a list of parts
    (``type`` may be left out, as OpenAI's ``EasyInputMessage`` allows)."""

    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[ContentPart]
    id: str | None = None
    status: str | None = None


class FunctionCallItem(_Body):
    """A call the model made earlier: ``call_id``, ``name``, ``arguments`` (a JSON text)."""

    type: Literal["function_call"]
    call_id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=64)
    arguments: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(_Body):
    """A tool's result for ``call_id``: ``output`` is a string or a list of ``input_text``
    parts."""

    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=128)
    output: str | list[ContentPart]
    id: str | None = None
    status: str | None = None


class ReasoningItem(_Body):
    """Reasoning from an earlier response: accepted and never sent back into the prompt."""

    type: Literal["reasoning"]
    id: str | None = None
    summary: list[dict[str, Any]] = Field(default_factory=list)
    content: list[dict[str, Any]] | None = None
    encrypted_content: str | None = None


class OtherItem(_Body):
    """Any other item type (``item_reference``, ``web_search_call``, ...): refused by convert
    with a 400 naming it."""

    type: str


def _item_kind(value: Any) -> str:
    kind = value.get("type", "message") if isinstance(value, dict) else getattr(
        value, "type", "message")
    return kind if kind in ("message", "function_call", "function_call_output",
                            "reasoning") else "other"


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[OtherItem, Tag("other")],
    Discriminator(_item_kind),
]


class TextFormat(_Body):
    """``text.format``: ``{"type": "text"}``, ``{"type": "json_object"}`` or ``{"type":
    "json_schema", "name", "schema", "strict", "description"}`` (Structured Outputs)."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: StrictBool | None = None
    description: str | None = None


class TextConfig(_Body):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class Reasoning(_Body):
    """``reasoning``: ``effort`` (``none``/``minimal`` turn thinking off) and ``summary``
    (``auto``, ``concise``, ``detailed``: the reasoning is also given as a summary)."""

    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class ResponseCreateRequest(_Body):
    """``POST /v1/responses`` body. Extensions beyond OpenAI: ``seed`` and
    ``reasoning_budget`` (as on ``/v1/chat/completions``)."""

    model: str | None = None
    input: str | list[Any] = Field(default_factory=list)  # items: see InputItem
    instructions: str | None = None
    max_output_tokens: Int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: Int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None  # checked by convert (400 naming tool_choice)
    parallel_tool_calls: StrictBool | None = None
    max_tool_calls: Int | None = Field(None, ge=1)
    text: TextConfig | None = None
    reasoning: Reasoning | None = None
    reasoning_budget: Int | None = Field(None, ge=1)
    previous_response_id: str | None = Field(None, max_length=64)
    store: StrictBool = True
    metadata: dict[str, str] | None = None
    user: str | None = Field(None, max_length=512)
    stream: StrictBool = False
    include: list[str] | None = None
    top_logprobs: Int | None = Field(None, ge=0, le=20)
    truncation: Literal["auto", "disabled"] | None = None
    background: StrictBool | None = None
    conversation: Any = None
    prompt: Any = None
