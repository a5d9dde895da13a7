"""The llama.cpp engine: with :mod:`cove.engine.llama_embed`, the only module that imports
``llama_cpp``.

Drives llama.cpp's batch API through llama-cpp-python's low-level bindings: one model, one context
with ``n_slots`` sequences, one ``llama_decode`` call per scheduler
step for every sequence that has work, and one sampler chain per sequence (logit bias,
penalties, grammar, top-k, top-p, min-p, temperature, seeded distribution — llama.cpp's
samplers, in the order ``common/sampling.cpp`` uses).

Log-probabilities (only for requests that ask for them, so the others pay nothing): the chain's
first samplers (logit bias, penalties) are applied to the slot's logits
(``llama_get_logits_ith``), the log-softmax of the result is taken over the whole vocabulary,
and the rest of the chain then draws from the same candidates.

KV layout (``kv_unified``): with a unified cache all sequences share one pool of
``n_ctx * n_slots`` cells, so a prefix held by any slot can be shared by another for free
(``llama_memory_seq_cp`` only tags the cells) and the batch never has to be split; attention then
runs over every sequence's cells (masked). Without it each slot has its own stream of ``n_ctx``
cells: attention stays per sequence, but a prefix copy moves a whole stream, and a batch whose
slots are not contiguous is split by llama.cpp into several micro-batches.

Prefix reuse: each slot remembers the tokens whose KV cells it holds. A new prompt keeps the
longest common prefix with its slot's cells; the scheduler may first ``copy`` a longer one from
another slot, and ``move`` a running request to another slot (to keep running slots
contiguous).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import _internals
from llama_cpp._logger import set_verbose

from cove.engine.types import ModelInfo, SamplingParams, TokenLogprob, common_prefix
from cove.engine.vision import Vision, feed_with_images, image_start, next_position
from cove.errors import EngineFailure, InvalidRequest

PENALTY_LAST_N = 64
LOGPROB_FLOOR = -9999.0  # reported for a token the model gives no chance (OpenAI's value)
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])  # llama.h


def load_gguf(path: Path, name: str) -> _internals.LlamaModel:
    """The weights of ``path`` (llama.cpp's own log lines silenced).

    Raises:
        EngineFailure: the file could not be loaded.
    """
    llama_cpp.llama_backend_init()
    set_verbose(False)  # llama.cpp's info lines would mix with the CLI's output
    try:
        return _internals.LlamaModel(
            path_model=str(path), params=llama_cpp.llama_model_default_params(), verbose=False
        )
    except ValueError as e:
        raise EngineFailure(f"could not load model {name!r} from {path}: {e}") from e


@dataclass
class _Slot:
    cached: list[int] = field(default_factory=list)  # tokens whose KV cells this slot holds
    sampler: _internals.LlamaSampler | None = None
    grammar: Any = None  # llama_sampler_p of the request's grammar, kept out of the chain
    logits_index: int = -1  # batch row of this slot's logits after the last decode
    n_pre: int = 0  # chain samplers applied before log-probabilities are taken
    top: int | None = None  # alternatives to report (None: no log-probabilities)
    logprob: TokenLogprob | None = None  # of the last sampled token


class LlamaEngine:
    """A GGUF model loaded for batched generation.

    Args:
        path: the ``.gguf`` file.
        name: the model's Cove name (e.g. ``smollm2:135m``), reported in ``info``.
        n_ctx: context window of each sequence, in tokens; capped at the trained length.
        n_slots: how many sequences can be decoded together.
        n_threads: CPU threads for decoding and prompt processing.
        n_batch: most tokens in one ``llama_decode`` call.
        kv_unified: one shared KV pool (cheap prefix sharing) instead of a stream per slot.
        lora: a LoRA adapter GGUF applied at scale 1 (``llama_adapter_lora_init``; freed with
            the model).
        projector: a vision projector (mmproj GGUF) for image input (see
            :mod:`cove.engine.vision`), or None.

    Raises:
        EngineFailure: the file, the projector or the context could not be loaded.
    """

    def __init__(
        self,
        path: Path,
        name: str,
        *,
        n_ctx: int = 4096,
        n_slots: int = 4,
        n_threads: int = 2,
        n_batch: int = 512,
        kv_unified: bool = False,
        lora: Path | None = None,
        projector: Path | None = None,
    ) -> None:
        if n_slots > n_batch:  # llama.cpp would abort the process when reserving the graph
            raise EngineFailure(f"{n_slots} slots cannot be decoded together in batches of "
                                f"{n_batch} tokens; use at most {n_batch} slots")
        self._model = model = load_gguf(path, name)
        n_ctx_train = model.n_ctx_train()
        if n_ctx_train > 0:
            n_ctx = min(n_ctx, n_ctx_train)
        n_ctx = max(256, (n_ctx // 256) * 256)  # llama.cpp pads per-sequence size to 256
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = n_ctx * n_slots
        cp.n_batch = n_batch
        cp.n_ubatch = n_batch
        cp.n_seq_max = n_slots
        cp.kv_unified = kv_unified
        cp.n_threads = n_threads
        cp.n_threads_batch = n_threads
        cp.no_perf = True
        try:
            self._ctx = _internals.LlamaContext(model=model, params=cp, verbose=False)
        except ValueError as e:
            model.close()
            raise EngineFailure(f"could not create a context for {name!r}: {e}") from e
        if lora is not None:
            self._apply_lora(lora, name)
        self._memory = llama_cpp.llama_get_memory(self._ctx.ctx)
        self.n_batch = n_batch
        self.n_slots = n_slots
        self.shared_kv = kv_unified
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._slots = [_Slot() for _ in range(n_slots)]
        self._n_vocab = model.n_vocab()
        self._vision: Vision | None = None
        if projector is not None:
            try:
                self._vision = Vision(projector, model.model, n_threads)
            except EngineFailure:
                self.close()
                raise
        self._mrope = bool(self._vision and self._vision.mrope)
        self._token_ids = np.arange(self._n_vocab, dtype=np.int32)
        self._candidates = np.zeros(self._n_vocab, dtype=_TOKEN_DATA)  # for grammar sampling
        md = model.metadata()
        self.info = ModelInfo(
            name=name,
            n_ctx=n_ctx,
            n_ctx_train=n_ctx_train,
            chat_template=md.get("tokenizer.chat_template"),
            bos_token=self._text(model.token_bos()),
            eos_token=self._text(model.token_eos()),
            add_bos=bool(model.add_bos_token()),
            max_token_bytes=self._longest_token(),
            metadata=md,
            n_vocab=self._n_vocab,
            fim=self._fim_tokens(),
            vision=self._vision is not None,
        )

    def _apply_lora(self, path: Path, name: str) -> None:
        adapter = llama_cpp.llama_adapter_lora_init(self._model.model, str(path).encode())
        if not adapter or llama_cpp.llama_set_adapters_lora(
                self._ctx.ctx, (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter), 1,
                (ctypes.c_float * 1)(1.0)) != 0:
            self._ctx.close()
            self._model.close()
            raise EngineFailure(f"could not apply the LoRA adapter of {name!r} ({path})")

    # -- vocabulary ----------------------------------------------------------------------------

    def _longest_token(self) -> int:
        """Bytes of the longest token text (special tokens included); one buffer for all."""
        buf = ctypes.create_string_buffer(256)
        to_piece, vocab, longest = llama_cpp.llama_token_to_piece, self._model.vocab, 0
        for t in range(self._n_vocab):
            n = to_piece(vocab, t, buf, 256, 0, True)
            longest = max(longest, n if n >= 0 else -n)
        return longest

    def _fim_tokens(self) -> tuple[int, int, int] | None:
        """``(prefix, suffix, middle)`` token ids when the vocabulary has all three (llama.cpp
        reads GGUF ``tokenizer.ggml.fim_*_token_id`` or finds texts like ``<|fim_prefix|>``)."""
        vocab = self._model.vocab
        ids = (llama_cpp.llama_vocab_fim_pre(vocab), llama_cpp.llama_vocab_fim_suf(vocab),
               llama_cpp.llama_vocab_fim_mid(vocab))
        return ids if all(0 <= t < self._n_vocab for t in ids) else None

    def _text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.piece(token, special=True).decode("utf-8", errors="replace")

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = True) -> list[int]:
        """Text to token ids (llama.cpp's tokenizer from the GGUF vocabulary)."""
        return list(self._model.tokenize(text.encode("utf-8"), add_bos, special))

    def piece(self, token: int, special: bool = False) -> bytes:
        """The bytes of one token (may be part of a UTF-8 character)."""
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self._model.vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._model.vocab, token, buf, len(buf), 0, special)
        return buf.raw[:n]

    def image_tokens(self, data: bytes, rgb: bytes, width: int, height: int) -> list[int]:
        """The prompt tokens of one image (see :meth:`cove.engine.vision.Vision.tokens`);
        any thread may call it.

        Raises:
            InvalidRequest: the model has no vision projector, or cannot take the image.
        """
        if self._vision is None:
            raise InvalidRequest(f"{self.info.name} cannot read images (it has no vision "
                                 "projector)", param="messages")
        return self._vision.tokens_for(data, rgb, width, height, self.n_batch)

    def cut(self, tokens: list[int], n: int) -> int:
        """How many of ``tokens`` (a slot's pending prompt) to decode when the scheduler
        offers ``n`` (see :meth:`cove.engine.vision.Vision.cut`)."""
        return n if self._vision is None else self._vision.cut(tokens, n, self.n_batch)

    def _pos(self, tokens: list[int], n: int) -> int:
        """The position of token ``n`` of ``tokens`` (its index, but for M-RoPE models)."""
        return next_position(tokens[:n]) if self._mrope else n

    def is_end(self, token: int) -> bool:
        """Whether ``token`` ends generation (end-of-generation tokens of the vocabulary)."""
        return bool(llama_cpp.llama_vocab_is_eog(self._model.vocab, token))

    # -- slots ---------------------------------------------------------------------------------

    def cached(self, slot: int) -> list[int]:
        """Tokens whose KV cells ``slot`` holds (for choosing a slot by shared prefix)."""
        return self._slots[slot].cached

    def copy(self, src: int, dst: int, n: int | None = None) -> None:
        """Make idle slot ``dst`` hold the KV cells of the first ``n`` tokens that ``src``
        holds (all when None); ``src`` may be running. With a shared pool the cells are only
        tagged as ``dst``'s too; with a stream per slot llama.cpp copies ``src``'s whole stream
        (at the next decode) and the tail past ``n`` is dropped.
        """
        if src == dst:
            raise ValueError("copy needs two different slots")
        s, d = self._slots[src], self._slots[dst]
        n = len(s.cached) if n is None else image_start(s.cached, min(n, len(s.cached)))
        pos = self._pos(s.cached, n)
        llama_cpp.llama_memory_seq_rm(self._memory, dst, -1, -1)
        if self.shared_kv:
            llama_cpp.llama_memory_seq_cp(self._memory, src, dst, 0, pos)
        else:
            llama_cpp.llama_memory_seq_cp(self._memory, src, dst, -1, -1)
            if n < len(s.cached):
                llama_cpp.llama_memory_seq_rm(self._memory, dst, pos, -1)
        d.cached = s.cached[:n]

    def move(self, src: int, dst: int) -> None:
        """The running request of ``src`` continues in idle slot ``dst``: its cells are copied
        and its sampler (with its penalty and grammar state) goes along. ``src`` becomes idle
        and keeps its cells."""
        self.copy(src, dst)
        s, d = self._slots[src], self._slots[dst]
        d.sampler, s.sampler = s.sampler, None
        d.grammar, s.grammar = s.grammar, None
        d.logits_index, s.logits_index = s.logits_index, -1
        d.n_pre, d.top, d.logprob = s.n_pre, s.top, s.logprob
        s.top = s.logprob = None

    def save(self, slot: int) -> bytearray:
        """The KV cells of ``slot`` as llama.cpp's sequence state
        (``llama_state_seq_get_data``), for :meth:`restore` into any slot of this engine.

        Raises:
            EngineFailure: llama.cpp could not write the state.
        """
        size = llama_cpp.llama_state_seq_get_size(self._ctx.ctx, slot)
        state = bytearray(size)
        buf = (ctypes.c_uint8 * size).from_buffer(state)
        if llama_cpp.llama_state_seq_get_data(self._ctx.ctx, buf, size, slot) != size:
            raise EngineFailure("could not save the sequence state")
        return state

    def restore(self, slot: int, state: bytearray, tokens: list[int]) -> None:
        """Make idle ``slot`` hold the cells :meth:`save` returned for ``tokens``.

        Raises:
            EngineFailure: llama.cpp refused the state (the slot is left empty).
        """
        llama_cpp.llama_memory_seq_rm(self._memory, slot, -1, -1)
        buf = (ctypes.c_uint8 * len(state)).from_buffer(state)
        if not llama_cpp.llama_state_seq_set_data(self._ctx.ctx, buf, len(state), slot):
            self.forget(slot)
            raise EngineFailure("could not restore the sequence state")
        self._slots[slot].cached = list(tokens)

    def start(self, slot: int, prompt: list[int], params: SamplingParams) -> int:
        """Prepare ``slot`` for ``prompt``: keep the KV cells of the longest common prefix
        with what the slot holds, drop the rest, and build the slot's sampler.

        Returns:
            how many prompt tokens are already in the KV cells (at most ``len(prompt) - 1``, so
            the last prompt token is always decoded and yields logits).

        Raises:
            InvalidRequest: the grammar does not parse.
        """
        s = self._slots[slot]
        keep = image_start(prompt, min(common_prefix(s.cached, prompt), len(prompt) - 1))
        if not llama_cpp.llama_memory_seq_rm(self._memory, slot, self._pos(s.cached, keep), -1):
            llama_cpp.llama_memory_seq_rm(self._memory, slot, -1, -1)
            keep = 0
        del s.cached[keep:]
        s.grammar = self._grammar(params)
        s.sampler, s.n_pre = self._sampler(params)
        s.top, s.logprob = params.logprobs, None
        return keep

    def _sampler(self, p: SamplingParams) -> tuple[_internals.LlamaSampler, int]:
        """The chain of ``p`` and how many of its first samplers (logit bias, penalties)
        shape the distribution that log-probabilities report."""
        smp = _internals.LlamaSampler()
        n_pre = 0
        bias = {t: b for t, b in p.logit_bias if 0 <= t < self._n_vocab}
        if bias:
            smp.add_logit_bias(self._n_vocab, bias)
            n_pre += 1
        if p.repeat_penalty != 1.0 or p.presence_penalty or p.frequency_penalty:
            smp.add_penalties(self._n_vocab, PENALTY_LAST_N, p.repeat_penalty,
                              p.frequency_penalty, p.presence_penalty)
            n_pre += 1
        if p.temperature <= 0:
            smp.add_greedy()
        else:
            if p.top_k > 0:
                smp.add_top_k(p.top_k)
            smp.add_top_p(p.top_p, 1)
            smp.add_min_p(p.min_p, 1)
            smp.add_temp(p.temperature)
            # any integer seed maps into 0..2**32-2: 2**32-1 is llama.cpp's "random seed"
            seed = llama_cpp.LLAMA_DEFAULT_SEED if p.seed is None else p.seed % 0xFFFFFFFF
            smp.add_dist(seed)
        return smp, n_pre

    def _grammar(self, p: SamplingParams) -> Any:
        if p.grammar is None:
            return None
        grammar = llama_cpp.llama_sampler_init_grammar(
            self._model.vocab, p.grammar.encode("utf-8"), b"root"
        )
        if not grammar:
            raise InvalidRequest("the grammar could not be parsed", param="grammar")
        return grammar

    def decode(self, feeds: list[tuple[int, list[int], bool]]) -> None:
        """One ``llama_decode`` over several slots. Each feed is ``(slot, tokens, want_logits)``;
        tokens go at the positions after what the slot holds; ``want_logits`` marks the last
        token so that :meth:`sample` can draw the next one. Total tokens <= ``n_batch``.
        Image placeholders (:mod:`cove.engine.vision`) are decoded from their embedding rows
        in calls of their own, before the text tokens that follow them.

        Raises:
            EngineFailure: llama.cpp could not decode (e.g. no KV space); the slots' new tokens
                are discarded.
        """
        if self._vision is not None and any(t < 0 for _, tokens, _ in feeds for t in tokens):
            feed_with_images(self, self._vision, feeds)
            return
        self._decode_tokens(feeds)

    def _decode_tokens(self, feeds: list[tuple[int, list[int], bool]]) -> None:
        """The ``llama_decode`` of text feeds (see :meth:`decode`)."""
        b = self._batch
        i = 0
        for slot, tokens, want in feeds:
            s = self._slots[slot]
            pos = self._pos(s.cached, len(s.cached))
            for j, tok in enumerate(tokens):
                b.token[i] = tok
                b.pos[i] = pos + j
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = slot
                b.logits[i] = False
                i += 1
            if want:
                b.logits[i - 1] = True
                s.logits_index = i - 1
        b.n_tokens = i
        rc = llama_cpp.llama_decode(self._ctx.ctx, b)
        if rc != 0:
            for slot, _, _ in feeds:
                self.forget(slot)
            raise EngineFailure(f"llama_decode failed with status {rc}")
        for slot, tokens, _ in feeds:
            self._slots[slot].cached.extend(tokens)

    def sample(self, slot: int) -> int:
        """Draw the next token of ``slot`` from the logits of its last decoded token (the
        sampler chain and grammar also record the token, for penalties and grammar state).

        With a grammar, the chain samples first and the grammar only checks the token drawn;
        only when it is refused is the grammar applied to the whole vocabulary and the token
        drawn again (llama.cpp's ``common_sampler_sample`` does the same): checking one token
        instead of 49k made a JSON-constrained token cost 0.1 ms instead of 8 ms here.
        When the request asks for log-probabilities they are taken on the way (see
        :meth:`logprobs`).
        """
        s = self._slots[slot]
        assert s.sampler is not None and s.logits_index >= 0
        chain = s.sampler.sampler
        if s.grammar is None and s.top is None:
            return int(llama_cpp.llama_sampler_sample(chain, self._ctx.ctx, s.logits_index))
        token, logprobs = self._draw(s, None, s.top is not None)
        if s.grammar is not None:
            one = np.array([(token, 0.0, 0.0)], dtype=_TOKEN_DATA)
            picked = llama_cpp.llama_token_data_array(
                data=one.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data)), size=1,
                selected=-1, sorted=False)
            llama_cpp.llama_sampler_apply(s.grammar, ctypes.byref(picked))
            if not np.isfinite(one["logit"][0]):  # refused: constrain the whole vocabulary
                token, _ = self._draw(s, s.grammar, False)
            llama_cpp.llama_sampler_accept(s.grammar, token)
        llama_cpp.llama_sampler_accept(chain, token)
        if logprobs is not None and s.top is not None:
            s.logprob = self._token_logprob(token, logprobs, s.top)
        return token

    def logprobs(self, slot: int) -> TokenLogprob | None:
        """The log-probabilities of the token the last :meth:`sample` of ``slot`` drew (None
        unless the request asked for them): log-softmax over the vocabulary of the logits
        after logit bias and penalties, before grammar, top-k/top-p/min-p and temperature."""
        return self._slots[slot].logprob

    def _draw(self, s: _Slot, grammar: Any, logprobs: bool) -> tuple[int, Any]:
        """Apply ``grammar`` (if any) and the chain of ``s`` to the logits of its batch row;
        the selected token (nothing is accepted) and, when ``logprobs``, the log-softmax of
        the logits after the chain's first ``n_pre`` samplers (an array over the vocabulary).
        """
        assert s.sampler is not None
        chain = s.sampler.sampler
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(self._ctx.ctx, s.logits_index),
            shape=(self._n_vocab,))
        cand = self._candidates
        cand["id"] = self._token_ids
        cand["logit"] = logits
        cand["p"] = 0.0
        arr = llama_cpp.llama_token_data_array(
            data=cand.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data)),
            size=self._n_vocab, selected=-1, sorted=False)
        ref = ctypes.byref(arr)
        lp = None
        if logprobs:
            # logit bias and penalties change logits in place, keeping the vocabulary order
            for i in range(s.n_pre):
                llama_cpp.llama_sampler_apply(llama_cpp.llama_sampler_chain_get(chain, i), ref)
            lp = _log_softmax(cand["logit"])
        if grammar is not None:
            llama_cpp.llama_sampler_apply(grammar, ref)
        if logprobs:
            for i in range(s.n_pre, llama_cpp.llama_sampler_chain_n(chain)):
                llama_cpp.llama_sampler_apply(llama_cpp.llama_sampler_chain_get(chain, i), ref)
        else:
            llama_cpp.llama_sampler_apply(chain, ref)
        if not 0 <= arr.selected < arr.size:
            raise EngineFailure("the sampler selected no token")
        return int(cand["id"][arr.selected]), lp

    def _token_logprob(self, token: int, lp: Any, k: int) -> TokenLogprob:
        """The entry of ``token`` with the ``k`` most likely alternatives of ``lp``."""
        top: tuple[tuple[bytes, float], ...] = ()
        if k > 0:
            k = min(k, self._n_vocab)
            best = np.argpartition(-lp, k - 1)[:k]
            best = best[np.argsort(-lp[best], kind="stable")]
            top = tuple((self.piece(int(t), special=True), _finite(lp[t])) for t in best)
        return TokenLogprob(self.piece(token, special=True), _finite(lp[token]), top)

    def release(self, slot: int) -> None:
        """The slot's request is over: free its sampler, keep its KV cells for prefix reuse."""
        s = self._slots[slot]
        if s.sampler is not None:
            s.sampler.close()
            s.sampler = None
        if s.grammar is not None:
            llama_cpp.llama_sampler_free(s.grammar)
            s.grammar = None
        s.logits_index = -1
        s.top = s.logprob = None

    def forget(self, slot: int) -> None:
        """Drop the slot's KV cells (after a failure)."""
        llama_cpp.llama_memory_seq_rm(self._memory, slot, -1, -1)
        self._slots[slot].cached = []

    def close(self) -> None:
        """Free samplers, the batch, the context and the model."""
        for i in range(self.n_slots):
            self.release(i)
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._vision is not None:
            self._vision.close()
            self._vision = None
        self._ctx.close()
        self._model.close()


def _log_softmax(logits: Any) -> Any:
    """``log(softmax(logits))`` in float64 (an array of the same length)."""
    x = logits.astype(np.float64)
    top = x.max()
    if not np.isfinite(top):
        return np.full_like(x, LOGPROB_FLOOR)
    return x - (top + np.log(np.exp(x - top).sum()))


def _finite(value: float) -> float:
    """A JSON-safe log-probability: -inf (and NaN) become :data:`LOGPROB_FLOOR`."""
    value = float(value)
    return value if value > LOGPROB_FLOOR else LOGPROB_FLOOR


def json_grammar(schema: dict[str, object] | None) -> str:
    """A GBNF grammar for any JSON object (``schema`` None) or for a JSON schema, using
    llama-cpp-python's converter (a port of llama.cpp's ``json_schema_to_grammar``).

    Raises:
        InvalidRequest: the schema cannot be converted.
    """
    import json

    from llama_cpp import llama_grammar

    class Converter(llama_grammar.SchemaConverter):  # type: ignore[misc]
        def _format_literal(self, literal: str) -> str:
            # the port escapes CR, LF and '"' but not the backslash (GBNF's escape character):
            # a property name or enum value holding '"' made a grammar llama.cpp could not
            # parse, one holding a backslash a grammar that wrote a different string
            return str(super()._format_literal(literal.replace("\\", "\\\\")))

    if schema is None:
        return llama_grammar.JSON_GBNF
    try:  # as llama_grammar.json_schema_to_gbnf, with the converter above
        converter = Converter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        converter.visit(converter.resolve_refs(json.loads(json.dumps(schema)), "stdin"), "")
        return str(converter.format_grammar())
    except Exception as e:  # noqa: BLE001 - the converter raises assorted errors
        raise InvalidRequest(f"cannot use this JSON schema: {e}", param="format") from e
