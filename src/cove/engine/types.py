"""Plain data types shared by engines, the scheduler and the chat pipeline."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one generation.

    ``max_tokens`` None means "until end of text or the context window is full".
    ``temperature`` 0 means greedy decoding. ``seed`` None means a fresh random seed.
    ``stop`` holds strings that end the generation; the stop text itself is never emitted.
    ``grammar`` is a GBNF grammar (llama.cpp's format) that constrains sampling, or None.
    Defaults follow llama.cpp's (top_k 40, top_p 0.95, min_p 0.05, temperature 0.8).
    """

    max_tokens: int | None = None
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    seed: int | None = None
    stop: tuple[str, ...] = ()
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    grammar: str | None = None


@dataclass(frozen=True)
class Token:
    """One generated token: its id, its raw bytes (possibly a partial UTF-8 sequence), and
    whether it ends the generation (end-of-generation token, whose bytes are not text)."""

    id: int
    piece: bytes
    is_end: bool = False


@dataclass(frozen=True)
class ModelInfo:
    """What the pipeline needs to know about a loaded model.

    ``n_ctx`` is the context window in tokens that this engine was loaded with;
    ``chat_template`` is the Jinja template from GGUF ``tokenizer.chat_template`` (or None);
    ``bos_token``/``eos_token`` are the texts of those special tokens (for templates);
    ``add_bos`` says whether the tokenizer wants a BOS token prepended (GGUF
    ``tokenizer.ggml.add_bos_token``).
    """

    name: str
    n_ctx: int
    n_ctx_train: int
    chat_template: str | None
    bos_token: str
    eos_token: str
    add_bos: bool = False
    vision: bool = False
    metadata: dict[str, str] = field(default_factory=dict)


class Engine(Protocol):
    """A loaded model that can tokenize and produce tokens. Not thread-safe: one generation at a
    time (the scheduler guarantees that); ``tokenize`` may be called from any thread."""

    info: ModelInfo

    def tokenize(self, text: str, *, add_bos: bool, special: bool) -> list[int]:
        """Text to token ids. ``special`` parses special-token texts like ``<|im_start|>``."""
        ...

    def tokens(
        self, prompt: list[int], params: SamplingParams, cancel: threading.Event
    ) -> Iterator[Token]:
        """Generate tokens after ``prompt`` until the consumer stops iterating, an
        end-of-generation token (yielded with ``is_end=True``) or the context is full.
        Implementations check ``cancel`` between tokens and return when it is set."""
        ...

    def close(self) -> None:
        """Free the model's memory."""
        ...


@dataclass(frozen=True)
class Usage:
    """Token counts of one request (OpenAI ``usage`` field names)."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class TextDelta:
    """A piece of generated text: complete UTF-8 characters, never part of a stop sequence."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The end of a generation, with why it ended and the token counts."""

    reason: FinishReason
    usage: Usage


GenerationEvent = TextDelta | Finished
