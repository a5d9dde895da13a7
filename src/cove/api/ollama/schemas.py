"""Request bodies of the Ollama-compatible API (field names as in Ollama's docs/api.md).

Unknown fields are ignored; known fields are validated and a wrong value is a 400 naming the
field. ``keep_alive`` and ``options`` are checked in :mod:`cove.api.ollama.convert`, which gives
their errors Ollama's wording.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _Named(_Body):
    """A body naming a model as ``model`` (or the older ``name``)."""

    model: str | None = None
    name: str | None = None

    @property
    def ref(self) -> str:
        return self.model or self.name or ""


class Message(_Body):
    """A chat message; ``images`` are base64 strings; ``thinking`` from earlier turns is
    accepted and not sent back to the model."""

    role: str
    content: str | None = ""
    images: list[str] | None = None
    thinking: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_name: str | None = None


class _Generation(_Named):
    stream: StrictBool = True
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    keep_alive: Any = None
    think: StrictBool | str | None = None


class ChatBody(_Generation):
    """``POST /api/chat``. No messages: only load (or, with ``keep_alive`` 0, unload)."""

    messages: list[Message] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    cove: dict[str, Any] | None = Field(
        None, description="Cove's extensions, as on /v1/chat/completions: {\"search\": {...}} "
        "answers with sources (cove.api.extensions)")


class GenerateBody(_Generation):
    """``POST /api/generate``. An empty prompt only loads (or unloads) the model."""

    prompt: str | None = ""
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: StrictBool = False
    images: list[str] | None = None


class EmbedBody(_Named):
    """``POST /api/embed``: one string or a list."""

    input: str | list[str] = ""
    truncate: StrictBool | None = True
    options: dict[str, Any] | None = None
    keep_alive: Any = None
    dimensions: int | None = Field(None, ge=1)


class EmbeddingsBody(_Named):
    """``POST /api/embeddings`` (the older, single-prompt form)."""

    prompt: str = ""
    options: dict[str, Any] | None = None
    keep_alive: Any = None


class ShowBody(_Named):
    """``POST /api/show``."""

    verbose: StrictBool = False


class DeleteBody(_Named):
    """``DELETE /api/delete``."""


class CopyBody(_Body):
    """``POST /api/copy``."""

    source: str
    destination: str


class PullBody(_Named):
    """``POST /api/pull``."""

    insecure: StrictBool = False
    stream: StrictBool = True


class CreateBody(_Named):
    """``POST /api/create``: a model from uploaded GGUF ``files`` (file name -> ``sha256:<hex>``
    of a blob) or a preset ``from`` a base model, with ``system`` and ``parameters``."""

    from_: str | None = Field(None, alias="from")
    system: str | None = None
    parameters: dict[str, Any] | None = None
    stream: StrictBool = True
    modelfile: str | None = None
    files: dict[str, str] | None = None
    license: str | list[str] | None = None
    adapters: dict[str, str] | None = None
    quantize: str | None = None
    template: str | None = None
    messages: list[dict[str, Any]] | None = None
