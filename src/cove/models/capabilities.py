"""What Cove serves for a model, in Ollama's capability names: the one source for
``/api/show``, ``cove show`` and the routes' checks, so that what is advertised is what the
routes accept.

- ``completion``: every model but an embedding-only one. Chat and generate (both APIs) refuse an
  embedding-only model with a 400, as Ollama does.
- ``tools``: every completion model. A template that handles ``tools`` renders them itself; for
  any other template Cove describes the tools in the system message and constrains the call
  with a grammar (:mod:`cove.tools`), so a request with tools is never refused for its template.
  (Ollama refuses tools for such templates; Cove decided to serve them.)
- ``thinking``: the chat template writes ``<think>`` (DeepSeek-R1 distills, QwQ, Qwen3).
  ``think: true`` for any other model is a 400, as in Ollama.
- ``vision``: a completion model installed with a vision projector (an mmproj GGUF: pulled
  with a curated model, ``cove import --mmproj``, an Ollama model's projector layer); the
  engine loads it through libmtmd (:mod:`cove.engine.vision`). Without one an image is a 400
  naming the model, even for a GGUF with vision keys.
- ``embedding``: an embedding-only model (an encoder architecture, or a ``<arch>.pooling_type``
  key, which is how Ollama decides). ``/api/embed`` takes every model, as Ollama's does (a
  completion model's embeddings are its mean-pooled hidden states), but Ollama's clients read
  ``embedding`` as "this is an embedding model" (``ollama run`` then prints vectors instead of
  chatting), so it is not advertised for completion models.

Not served: ``insert`` (``suffix`` on ``/api/generate`` is refused).
"""

from __future__ import annotations

from typing import Any

from cove.errors import InvalidRequest

EMBEDDING_ARCHS = frozenset({"bert", "nomic-bert", "jina-bert-v2", "t5encoder", "modern-bert"})


def thinks(template: str | None) -> bool:
    """Whether a chat template writes ``<think>`` (its output is split into reasoning)."""
    return bool(template and "<think>" in template)


def renders_tools(template: str | None) -> bool:
    """Whether a chat template handles a ``tools`` variable itself (else Cove prompts them)."""
    return bool(template and "tools" in template)


def embedding_only(arch: str, kv: dict[str, Any]) -> bool:
    """Whether a model of architecture ``arch`` with GGUF keys ``kv`` only embeds."""
    return arch in EMBEDDING_ARCHS or f"{arch}.pooling_type" in kv


def served(arch: str, kv: dict[str, Any], template: str | None) -> list[str]:
    """Ollama's ``capabilities`` list for a model, as Cove's routes serve it (see the module
    docstring): ``["embedding"]`` for an embedding-only model, else ``completion``, ``tools``
    and, for a reasoning template, ``thinking``."""
    if embedding_only(arch, kv):
        return ["embedding"]
    return ["completion", "tools", *(["thinking"] if thinks(template) else [])]


def of(meta: dict[str, Any], projector: bool = False) -> list[str]:
    """:func:`served` for a metadata summary of :func:`~cove.models.gguf_meta.read_metadata`
    (recomputed, so a summary cached by an older Cove cannot advertise what is not served);
    ``{}`` (metadata unknown) counts as a completion model. ``projector``: the model has a
    vision projector (adds ``vision`` to a completion model)."""
    caps = served(str(meta.get("architecture") or ""), meta.get("kv") or {},
                  meta.get("chat_template"))
    return [*caps, "vision"] if projector and "completion" in caps else caps


def require_completion(name: str, meta: dict[str, Any]) -> None:
    """Refuse chat and generate for an embedding-only model.

    Raises:
        InvalidRequest: ``meta`` describes an embedding-only model (param ``model``).
    """
    if "completion" not in of(meta):
        raise InvalidRequest(f"{name} is an embedding model: it does not support chat or "
                             "generate (use it with /api/embed or /v1/embeddings)",
                             param="model")
