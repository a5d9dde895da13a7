"""Image input through libmtmd (llama.cpp's multimodal library, via llama-cpp-python's
``mtmd_cpp`` bindings): with :mod:`cove.engine.llama`, the only modules that import
``llama_cpp``.

A model with a vision projector (an mmproj GGUF) turns each image into a run of *image
tokens*: libmtmd preprocesses the pixels (resize, tiles) and the projector encodes them into
one embedding row per token, in the text model's input space. Cove then feeds those rows
through the scheduler's prefill like prompt tokens, so an image request is batched with text
requests (the rows go into their own ``llama_decode`` call of the same step: a llama.cpp batch
holds either token ids or embeddings).

**Placeholders.** In a prompt's token list an image token is a negative integer that encodes
``(image key, n_pos, index)``: the key is the first 40 bits of the SHA-256 of the normalised
image bytes and the chunk number, so the same image in a follow-up turn gives the same tokens,
and the KV cells that hold it are reused by the engine's ordinary prefix matching. ``n_pos`` is
how many positions the chunk takes (M-RoPE models such as Qwen2.5-VL advance the position by
the grid's longer side, not by the number of tokens). The embedding rows live in a small LRU
keyed by the image key (:data:`EMBED_CACHE_BYTES`); a chunk whose KV cells are cached needs no
rows at all.

**Logs.** libmtmd and clip write their progress, and the whole text they tokenize, to stderr
by default; :func:`silence` installs no-op log callbacks before anything is loaded (user text
never reaches a log). Only an image marker, never user text, is given to ``mtmd_tokenize``.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import mtmd_cpp

from cove.errors import EngineFailure, InvalidRequest

EMBED_CACHE_BYTES = 256 * 1024 * 1024  # embedding rows of recent images kept in memory
_INDEX_BITS = 16  # tokens per chunk < 65536
_NPOS_BITS = 16
_KEY_BITS = 40


def _noop_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    return None


_NOOP = llama_cpp.llama_log_callback(_noop_log)  # kept alive for the process's lifetime
_silenced = False


def silence() -> None:
    """Install no-op log callbacks for libmtmd, its helpers and clip (idempotent)."""
    global _silenced
    if not _silenced:
        mtmd_cpp.mtmd_log_set(_NOOP, None)
        mtmd_cpp.mtmd_helper_log_set(_NOOP, None)
        _silenced = True


def placeholder(key: int, n_pos: int, index: int) -> int:
    """The token standing for row ``index`` of the image chunk ``key`` (negative)."""
    return -1 - ((((key << _NPOS_BITS) | n_pos) << _INDEX_BITS) | index)


def parse(token: int) -> tuple[int, int, int]:
    """``(key, n_pos, index)`` of a placeholder token (see :func:`placeholder`)."""
    v = -1 - token
    index = v & ((1 << _INDEX_BITS) - 1)
    v >>= _INDEX_BITS
    return v >> _NPOS_BITS, v & ((1 << _NPOS_BITS) - 1), index


def is_image(token: int) -> bool:
    return token < 0


def next_position(tokens: list[int]) -> int:
    """The position after ``tokens`` for an M-RoPE model: one per text token, ``n_pos`` per
    image chunk (counted at its first row)."""
    pos = 0
    for t in tokens:
        if t >= 0:
            pos += 1
        else:
            _, n_pos, index = parse(t)
            pos += n_pos if index == 0 else 0
    return pos


def image_start(tokens: list[int], n: int) -> int:
    """``n`` moved back to the start of the image chunk it falls inside (else ``n``): a KV
    prefix is kept or cut only at a chunk's edge."""
    while 0 < n < len(tokens) and tokens[n] < 0 and parse(tokens[n])[2] > 0:
        n -= 1
    return n


@dataclass
class Chunk:
    """One encoded image chunk: ``rows`` (``n_tokens x n_embd`` float32), ``n_pos``, whether
    the rows attend to each other both ways (``non_causal``, Gemma 3), and for M-RoPE models
    the owned mtmd chunk (for its decoder positions)."""

    rows: np.ndarray
    n_pos: int
    non_causal: bool = False
    chunk: Any = None

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes)


class Vision:
    """A vision projector loaded for a text model.

    Args:
        projector: the mmproj GGUF.
        model: the text model's ``llama_model`` pointer (libmtmd checks the embedding width).
        n_threads: CPU threads for the image encoder.

    Raises:
        EngineFailure: the projector could not be loaded, or it has no vision encoder.
    """

    def __init__(self, projector: Path, model: Any, n_threads: int) -> None:
        silence()
        params = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu = False
        params.print_timings = False
        params.n_threads = n_threads
        params.warmup = False
        ctx = mtmd_cpp.mtmd_init_from_file(str(projector).encode(), model, params)
        if not ctx:
            raise EngineFailure(f"could not load the vision projector {projector.name} (is it "
                                "the projector made for this model?)")
        self._ctx = ctx
        if not mtmd_cpp.mtmd_support_vision(ctx):
            self.close()
            raise EngineFailure(f"{projector.name} has no vision encoder")
        self.mrope = bool(mtmd_cpp.mtmd_decode_use_mrope(ctx))
        self.n_embd = int(llama_cpp.llama_model_n_embd_inp(model))
        self._marker = mtmd_cpp.mtmd_default_marker()
        self._lock = threading.Lock()  # the chunk cache (held briefly; the worker reads it)
        self._encoding = threading.Lock()  # the mtmd context: one image at a time
        self._chunks: OrderedDict[int, Chunk] = OrderedDict()
        self._layout: dict[str, list[int]] = {}  # image digest -> its tokens
        self._used = 0

    def tokens(self, data: bytes, rgb: bytes, width: int, height: int) -> list[int]:
        """The tokens of one image: libmtmd's text tokens around it (model-specific, such as
        ``<start_of_image>``) and a placeholder per image row. ``data`` are the normalised
        image's bytes (its identity), ``rgb`` its pixels (``width * height * 3`` bytes).
        Encodes the image (seconds on a CPU for a large model) unless it is cached.

        Raises:
            InvalidRequest: libmtmd refused the image.
            EngineFailure: the encoder failed.
        """
        digest = hashlib.sha256(data).hexdigest()
        with self._encoding:  # the decoding worker only ever waits for self._lock
            known = self._cached(digest)
            if known is not None:
                return known
            out = self._encode(digest, rgb, width, height)
            with self._lock:
                self._layout[digest] = out
                if len(self._layout) > 4096:
                    self._layout.pop(next(iter(self._layout)))
            return list(out)

    def tokens_for(self, data: bytes, rgb: bytes, width: int, height: int,
                   n_batch: int) -> list[int]:
        """:meth:`tokens`, refusing an image whose rows must be decoded in one batch
        (:meth:`non_causal`) when they are more than ``n_batch``.

        Raises:
            InvalidRequest: as :meth:`tokens`, or such an image.
        """
        tokens = self.tokens(data, rgb, width, height)
        for key, n in Counter(parse(t)[0] for t in tokens if t < 0).items():
            if n > n_batch and self.non_causal(key):
                raise InvalidRequest(
                    f"the image makes {n} tokens, and this model decodes an image in one batch: "
                    f"COVE_N_BATCH ({n_batch}) must be at least that", param="messages")
        return tokens

    def cut(self, tokens: list[int], n: int, n_batch: int) -> int:
        """How many of ``tokens`` (a slot's pending prompt) to decode when ``n`` are offered:
        ``n``, except that a chunk whose rows attend both ways (Gemma 3) is never split: cut
        before it, or when it comes first, take it whole (at most ``n_batch``, which
        :meth:`tokens_for` guarantees it fits)."""
        if n >= len(tokens) or tokens[n] >= 0:
            return n
        key, _, index = parse(tokens[n])
        if index == 0 or not self.non_causal(key):
            return n
        start = n - index
        if start > 0:
            return start
        end = n
        while end < len(tokens) and tokens[end] < 0 and parse(tokens[end])[0] == key:
            end += 1
        return min(end, n_batch)

    def _cached(self, digest: str) -> list[int] | None:
        """The tokens of image ``digest`` when all its chunks are still cached."""
        with self._lock:
            known = self._layout.get(digest)
            if known is None or any(t < 0 and parse(t)[0] not in self._chunks for t in known):
                return None
            for t in known:
                if t < 0:
                    self._chunks.move_to_end(parse(t)[0])
            return list(known)

    def _encode(self, digest: str, rgb: bytes, width: int, height: int) -> list[int]:
        buf = (ctypes.c_uint8 * len(rgb)).from_buffer_copy(rgb)
        bitmap = mtmd_cpp.mtmd_bitmap_init(width, height, buf)
        if not bitmap:
            raise InvalidRequest("the image could not be read", param="image")
        chunks = mtmd_cpp.mtmd_input_chunks_init()
        try:
            text = mtmd_cpp.mtmd_input_text(self._marker, len(self._marker), False, True)
            bitmaps = (mtmd_cpp.mtmd_bitmap_p_ctypes * 1)(bitmap)
            rc = mtmd_cpp.mtmd_tokenize(self._ctx, chunks, ctypes.byref(text), bitmaps, 1)
            if rc != 0:
                raise InvalidRequest(f"the vision model could not take this image (libmtmd "
                                     f"status {rc})", param="image")
            out: list[int] = []
            for c in range(mtmd_cpp.mtmd_input_chunks_size(chunks)):
                chunk = mtmd_cpp.mtmd_input_chunks_get(chunks, c)
                kind = mtmd_cpp.mtmd_input_chunk_get_type(chunk)
                if kind == mtmd_cpp.MTMD_INPUT_CHUNK_TYPE_TEXT:
                    n = ctypes.c_size_t(0)
                    ids = mtmd_cpp.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                    out.extend(int(ids[i]) for i in range(n.value))
                elif kind == mtmd_cpp.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                    out.extend(self._encode_chunk(digest, c, chunk))
                else:
                    raise InvalidRequest("only images are supported", param="image")
            return out
        finally:
            mtmd_cpp.mtmd_input_chunks_free(chunks)
            mtmd_cpp.mtmd_bitmap_free(bitmap)

    def _encode_chunk(self, digest: str, number: int, chunk: Any) -> list[int]:
        n_tokens = int(mtmd_cpp.mtmd_input_chunk_get_n_tokens(chunk))
        n_pos = int(mtmd_cpp.mtmd_input_chunk_get_n_pos(chunk))
        if not 0 < n_tokens < (1 << _INDEX_BITS) or not 0 < n_pos < (1 << _NPOS_BITS):
            raise InvalidRequest(f"the image makes {n_tokens} tokens, too many", param="image")
        if mtmd_cpp.mtmd_encode_chunk(self._ctx, chunk) != 0:
            raise EngineFailure("the vision encoder failed on this image")
        out = mtmd_cpp.mtmd_get_output_embd(self._ctx)
        rows = np.ctypeslib.as_array(out, shape=(n_tokens * self.n_embd,))
        rows = rows.reshape(n_tokens, self.n_embd).copy()
        if not np.isfinite(rows).all():
            raise EngineFailure("the vision encoder produced non-finite values")
        key = int.from_bytes(hashlib.sha256(f"{digest}:{number}".encode()).digest()[:5], "big")
        owned = mtmd_cpp.mtmd_input_chunk_copy(chunk) if self.mrope else None
        non_causal = bool(mtmd_cpp.mtmd_decode_use_non_causal(self._ctx, chunk))
        self._put(key, Chunk(rows, n_pos, non_causal, owned))
        return [placeholder(key, n_pos, i) for i in range(n_tokens)]

    def _put(self, key: int, chunk: Chunk) -> None:
        with self._lock:
            old = self._chunks.pop(key, None)
            if old is not None:
                self._drop(old)
            self._chunks[key] = chunk
            self._used += chunk.nbytes
            while self._used > EMBED_CACHE_BYTES and len(self._chunks) > 1:
                _, first = self._chunks.popitem(last=False)
                self._drop(first)

    def _drop(self, chunk: Chunk) -> None:
        self._used -= chunk.nbytes
        if chunk.chunk is not None:
            mtmd_cpp.mtmd_input_chunk_free(chunk.chunk)
            chunk.chunk = None

    def chunk(self, key: int) -> Chunk:
        """The encoded chunk ``key``.

        Raises:
            EngineFailure: it is no longer cached (evicted between tokenizing and decoding).
        """
        with self._lock:
            found = self._chunks.get(key)
        if found is None:
            raise EngineFailure("an image of this request was evicted before it was decoded; "
                                "retry")
        return found

    def non_causal(self, key: int) -> bool:
        """Whether the chunk's rows attend to each other both ways (Gemma 3): then they are
        decoded in one pass."""
        return self.chunk(key).non_causal

    def positions(self, key: int, pos_0: int, start: int, n: int) -> np.ndarray:
        """M-RoPE positions of rows ``start .. start+n`` of chunk ``key`` placed at ``pos_0``,
        in llama.cpp's layout (``t`` for all rows, then ``y``, ``x``, ``z``; as
        ``mtmd-helper.cpp``'s ``set_position_mrope_2d``)."""
        c = self.chunk(key)
        image = mtmd_cpp.mtmd_input_chunk_get_tokens_image(c.chunk)
        pos = np.zeros((4, n), dtype=np.int32)
        for j in range(n):
            p = mtmd_cpp.mtmd_image_tokens_get_decoder_pos(image, pos_0, start + j)
            pos[:, j] = (p.t, p.y, p.x, p.z)
        return pos.reshape(-1)

    def close(self) -> None:
        with self._encoding, self._lock:
            for chunk in self._chunks.values():
                self._drop(chunk)
            self._chunks.clear()
        if self._ctx:
            mtmd_cpp.mtmd_free(self._ctx)
            self._ctx = None


def decode_rows(ctx: Any, rows: np.ndarray, pos: np.ndarray, seq: int) -> int:
    """One ``llama_decode`` of embedding ``rows`` (``n x n_embd`` float32) for sequence
    ``seq`` at positions ``pos`` (``n`` of them, or ``4 * n`` for M-RoPE); no logits.
    Returns llama.cpp's status."""
    n = rows.shape[0]
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    pos = np.ascontiguousarray(pos, dtype=np.int32)
    n_seq = np.ones(n, dtype=np.int32)
    seq_ids = np.full(n, seq, dtype=np.int32)
    seq_ptrs = (ctypes.POINTER(ctypes.c_int32) * n)(
        *[ctypes.cast(seq_ids.ctypes.data + 4 * i, ctypes.POINTER(ctypes.c_int32))
          for i in range(n)])
    logits = np.zeros(n, dtype=np.int8)
    batch: Any = llama_cpp.llama_batch()
    batch.n_tokens = n
    batch.token = None  # NULL: the batch holds embeddings
    batch.embd = rows.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    batch.pos = pos.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_pos))
    batch.n_seq_id = n_seq.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
    batch.seq_id = ctypes.cast(seq_ptrs, ctypes.POINTER(ctypes.POINTER(llama_cpp.llama_seq_id)))
    batch.logits = logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8))
    return int(llama_cpp.llama_decode(ctx, batch))


def _segments(tokens: list[int]) -> list[tuple[int | None, list[int]]]:
    """``tokens`` cut into runs: ``(None, text tokens)`` and ``(chunk key, placeholders)``."""
    out: list[tuple[int | None, list[int]]] = []
    for t in tokens:
        key = parse(t)[0] if t < 0 else None
        if out and out[-1][0] == key:
            out[-1][1].append(t)
        else:
            out.append((key, [t]))
    return out


def feed_with_images(engine: Any, vision: Vision, feeds: list[tuple[int, list[int], bool]]) -> None:
    """Decode feeds that hold image placeholders, for :meth:`LlamaEngine.decode`.

    Each feed is cut into runs of text and of image rows, and the runs are decoded in rounds,
    right-aligned: round ``r`` decodes each feed's run that is ``rounds - r`` from its end, its
    image rows first (one ``llama_decode`` of embeddings per run) and then every text run of
    the round in one ``llama_decode``. So the text of all feeds that need logits (their last
    run) is in the last call, and no later call overwrites those logits.

    Raises:
        EngineFailure: a decode failed (the feeds' slots are emptied), or an image's rows are
            no longer cached.
    """
    plans = [(slot, _segments(tokens), want) for slot, tokens, want in feeds]
    rounds = max(len(segs) for _, segs, _ in plans)
    try:
        for r in range(rounds):
            text: list[tuple[int, list[int], bool]] = []
            for slot, segs, want in plans:
                k = r - (rounds - len(segs))
                if k < 0:
                    continue
                key, tokens = segs[k]
                if key is None:
                    text.append((slot, tokens, want and k == len(segs) - 1))
                else:
                    _decode_image_run(engine, vision, slot, key, tokens)
            if text:
                engine._decode_tokens(text)
    except EngineFailure:
        for slot, _, _ in feeds:
            engine.forget(slot)
        raise


def _decode_image_run(engine: Any, vision: Vision, slot: int, key: int,
                      tokens: list[int]) -> None:
    """Decode rows of chunk ``key`` (the run ``tokens``) after what ``slot`` holds."""
    cached: list[int] = engine._slots[slot].cached
    first = parse(tokens[0])[2]
    chunk = vision.chunk(key)
    rows = chunk.rows[first:first + len(tokens)]
    if vision.mrope:
        pos_0 = next_position(cached[:len(cached) - first])
        pos = vision.positions(key, pos_0, first, len(tokens))
    else:
        pos = np.arange(len(cached), len(cached) + len(tokens), dtype=np.int32)
    non_causal = chunk.non_causal
    ctx = engine._ctx.ctx
    if non_causal:
        llama_cpp.llama_set_causal_attn(ctx, False)
    try:
        rc = decode_rows(ctx, rows, pos, slot)
    finally:
        if non_causal:
            llama_cpp.llama_set_causal_attn(ctx, True)
    if rc != 0:
        raise EngineFailure(f"llama_decode of an image failed with status {rc}")
    cached.extend(tokens)
