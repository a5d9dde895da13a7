"""Plain data types shared by engines, the scheduler and the chat pipeline."""

from __future__ import annotations

from collections.abc import Callable
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
    ``logit_bias`` holds ``(token id, bias)`` pairs added to the model's logits before any
    other sampler (OpenAI's ``logit_bias``; -100 all but bans a token, +100 all but forces it).
    ``logprobs`` None: no log-probabilities; k >= 0: report each sampled token's
    log-probability and the k most likely alternatives (see :class:`TokenLogprob`).
    ``watch``, when set, is called in the engine's worker with each piece of text as it is
    emitted; when it returns True the generation ends there (``"stop"``): a stateful check
    such as "a tool call was repeated" that must act at once, not a step later.
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
    logit_bias: tuple[tuple[int, float], ...] = ()
    logprobs: int | None = None
    watch: Callable[[str], bool] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class TokenLogprob:
    """The log-probability of one sampled token and its most likely alternatives.

    The distribution is the log-softmax over the whole vocabulary of the logits the sampling
    filters receive: the model's logits with ``logit_bias`` added and the repetition,
    presence and frequency penalties applied, before grammar, top-k, top-p, min-p and
    temperature (as OpenAI reports the model's distribution before temperature and top_p,
    logit bias included; llama-server's default, ``post_sampling_probs: false``, is before the
    bias and penalties too). ``token`` and the texts in
    ``top`` are token bytes (special tokens as their text, a piece may be part of a UTF-8
    character); ``top`` is most likely first. ``offset`` is where the token starts in the
    generated text, in characters (set by :class:`cove.engine.generate.TextStream`).
    """

    token: bytes
    logprob: float
    top: tuple[tuple[bytes, float], ...] = ()
    offset: int = 0


@dataclass(frozen=True)
class ModelInfo:
    """What the pipeline needs to know about a loaded model.

    ``n_ctx`` is the context window in tokens that this engine was loaded with;
    ``chat_template`` is the Jinja template from GGUF ``tokenizer.chat_template`` (or None);
    ``bos_token``/``eos_token`` are the texts of those special tokens (for templates);
    ``add_bos`` says whether the tokenizer wants a BOS token prepended (GGUF
    ``tokenizer.ggml.add_bos_token``); ``max_token_bytes`` is the longest token's text in bytes
    (so ``n_ctx * max_token_bytes`` bounds the bytes of any text that fits); ``n_vocab`` is
    the vocabulary size (0: unknown); ``fim`` the fill-in-the-middle token ids ``(prefix,
    suffix, middle)`` (GGUF ``tokenizer.ggml.fim_pre_token_id``/``fim_suf_token_id``/
    ``fim_mid_token_id``, or found by llama.cpp from texts such as ``<|fim_prefix|>``), None
    when the vocabulary has none.
    """

    name: str
    n_ctx: int
    n_ctx_train: int
    chat_template: str | None
    bos_token: str
    eos_token: str
    add_bos: bool = False
    max_token_bytes: int = 1
    vision: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    n_vocab: int = 0
    fim: tuple[int, int, int] | None = None


class Engine(Protocol):
    """A loaded model that decodes several sequences ("slots") together.

    The scheduler is the only caller of everything but ``tokenize`` (which any thread may call),
    and calls it from one thread. A request's life in slot ``s``: maybe ``copy`` (cells of a
    longer shared prefix from another slot), ``start`` (keeps the KV cells of the longest
    common prefix, builds the sampler), ``decode`` steps that feed the rest of the prompt and
    then each sampled token, ``sample`` after each step whose feed asked for logits, maybe
    ``move`` (the request continues in another slot), and ``release`` at the end.
    """

    info: ModelInfo
    n_slots: int
    n_batch: int
    # True: one KV pool; a copy only tags cells (free) and any set of slots decodes in one
    # pass. False: a KV stream per slot; a copy moves a whole stream, and a batch whose slots
    # are not contiguous is split into several passes.
    shared_kv: bool

    def tokenize(self, text: str, *, add_bos: bool, special: bool) -> list[int]:
        """Text to token ids. ``special`` parses special-token texts like ``<|im_start|>``."""
        ...

    def piece(self, token: int) -> bytes:
        """The bytes of a token (possibly an incomplete UTF-8 sequence)."""
        ...

    def image_tokens(self, data: bytes, rgb: bytes, width: int, height: int) -> list[int]:
        """The prompt tokens of a normalised image (``data`` its bytes, ``rgb`` its pixels);
        any thread may call it. Image rows are negative placeholders (see
        :mod:`cove.engine.vision`). Raises InvalidRequest for a model without vision."""
        ...

    def is_end(self, token: int) -> bool:
        """Whether the token ends generation (end-of-generation token)."""
        ...

    def cached(self, slot: int) -> list[int]:
        """Tokens whose KV cells the slot holds."""
        ...

    def copy(self, src: int, dst: int, n: int | None = None) -> None:
        """Make idle slot ``dst`` hold the KV cells of the first ``n`` tokens ``src`` holds
        (all when None); what ``dst`` held is dropped."""
        ...

    def move(self, src: int, dst: int) -> None:
        """The running request of ``src`` continues in idle slot ``dst`` (cells and sampler
        state); ``src`` becomes idle and keeps a copy of the cells."""
        ...

    def save(self, slot: int) -> bytearray:
        """The slot's KV cells as an opaque state, restorable into any slot by ``restore``."""
        ...

    def restore(self, slot: int, state: bytearray, tokens: list[int]) -> None:
        """Make idle ``slot`` hold the cells ``save`` returned (for ``tokens``)."""
        ...

    def start(self, slot: int, prompt: list[int], params: SamplingParams) -> int:
        """Prepare the slot for ``prompt``; return how many prompt tokens need no decoding
        (the common prefix with the slot's cells, at most ``len(prompt) - 1``)."""
        ...

    def decode(self, feeds: list[tuple[int, list[int], bool]]) -> None:
        """One batched decode of ``(slot, tokens, want_logits)`` feeds."""
        ...

    def cut(self, tokens: list[int], n: int) -> int:
        """How many of a slot's pending prompt ``tokens`` to decode when the scheduler offers
        ``n`` (``n``, unless that would split an image chunk that must be decoded whole; then
        fewer, or the whole chunk when it comes first)."""
        ...

    def sample(self, slot: int) -> int:
        """Sample the slot's next token from its last logits."""
        ...

    def logprobs(self, slot: int) -> TokenLogprob | None:
        """The log-probabilities of the token the last :meth:`sample` drew, when the slot's
        request asked for them (``SamplingParams.logprobs``), else None."""
        ...

    def release(self, slot: int) -> None:
        """End the slot's request (its KV cells stay for prefix reuse)."""
        ...

    def forget(self, slot: int) -> None:
        """Drop the slot's KV cells."""
        ...

    def close(self) -> None:
        """Free the model's memory."""
        ...


@dataclass(frozen=True)
class Usage:
    """Token counts of one request (OpenAI ``usage`` field names). ``cached_tokens`` is how many
    prompt tokens were not computed again because their KV cells were reused (OpenAI's
    ``usage.prompt_tokens_details.cached_tokens``)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class TextDelta:
    """A piece of generated text: complete UTF-8 characters, never part of a stop sequence.
    ``logprobs`` are those of the tokens whose text ends in this piece (when requested; a
    piece may carry none, or logprobs with no text at the very end)."""

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class Finished:
    """The end of a generation, with why it ended and the token counts. ``forced`` says a
    :class:`ForcedContinuation` was injected; ``stop_sequence`` is the stop string that ended
    it (reason ``stop``), None for an end-of-generation token or another reason."""

    reason: FinishReason
    usage: Usage
    forced: bool = False
    stop_sequence: str | None = None


@dataclass(frozen=True)
class ForcedContinuation:
    """Tokens to inject into a generation once, e.g. to close a reasoning block at a budget.

    After ``after`` generated tokens, if ``when`` (None: always) has appeared in the generated
    text and ``until`` has not, ``tokens`` are fed to the model as if generated (their text is
    emitted and they count as completion tokens) and sampling resumes after the last one.
    """

    after: int
    tokens: tuple[int, ...]
    until: str
    when: str | None = None


GenerationEvent = TextDelta | Finished


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists. Compares 256-token slices
    first (list equality runs in C), so a long shared history costs microseconds: the scheduler
    compares every prompt with every slot and host-cache entry."""
    n = min(len(a), len(b))
    i = 0
    while i + 256 <= n and a[i:i + 256] == b[i:i + 256]:
        i += 256
    while i < n and a[i] == b[i]:
        i += 1
    return i
