"""The llama.cpp embedder: a GGUF model in embedding mode, several inputs per decode.

With :mod:`cove.engine.llama`, the only module that imports ``llama_cpp``.
"""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp import _internals

from cove.engine.llama import load_gguf
from cove.errors import EngineFailure

# the model's own pooling is used when its GGUF declares mean, CLS or last (llama.h's
# llama_pooling_type); none, rank or no key at all: mean
_POOLED = {str(llama_cpp.LLAMA_POOLING_TYPE_MEAN), str(llama_cpp.LLAMA_POOLING_TYPE_CLS),
           str(llama_cpp.LLAMA_POOLING_TYPE_LAST)}


class LlamaEmbedder:
    """A GGUF model loaded in embedding mode, for ``/api/embed`` and ``/v1/embeddings``.

    One llama.cpp context with a unified KV cache of ``n_ctx`` cells and up to ``n_seq_max``
    sequences: :meth:`embed_batch` decodes several inputs in one ``llama_decode`` (each its own
    sequence id, every token an output) and reads one pooled vector per sequence
    (``llama_get_embeddings_seq``), as llama.cpp's server does. Pooling is the model's own when
    its GGUF declares mean, CLS or last (``<arch>.pooling_type``, as embedding models do), mean
    otherwise. ``n_ubatch`` is ``n_ctx``, so that an input of up to ``n_ctx`` tokens is
    pooled in one micro-batch (llama.cpp pools per micro-batch). Encoder models (BERT) have no
    KV cache: llama.cpp runs ``llama_decode`` as an encode.

    Not thread-safe: callers serialise calls (and :meth:`close`) with a lock.

    Args:
        path: the ``.gguf`` file. name: the model's Cove name.
        n_ctx: longest input in tokens, and most tokens in one batch; capped at the trained
            length.
        n_threads: CPU threads.
        n_seq_max: most inputs in one batch (capped at llama.cpp's limit, 256).

    Raises:
        EngineFailure: the file could not be loaded or the context could not be created.
    """

    def __init__(self, path: Path, name: str, *, n_ctx: int = 2048, n_threads: int = 2,
                 n_seq_max: int = 64) -> None:
        self._model = model = load_gguf(path, name)
        if model.n_ctx_train() > 0:
            n_ctx = min(n_ctx, model.n_ctx_train())
        arch = model.metadata().get("general.architecture", "")
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = cp.n_batch = cp.n_ubatch = n_ctx
        cp.n_seq_max = max(1, min(n_seq_max, llama_cpp.llama_max_parallel_sequences()))
        cp.kv_unified = True  # batches hold several short inputs; cells are cleared per batch
        cp.embeddings = True
        if model.metadata().get(f"{arch}.pooling_type") not in _POOLED:
            cp.pooling_type = llama_cpp.LLAMA_POOLING_TYPE_MEAN
        cp.n_threads = cp.n_threads_batch = n_threads
        cp.no_perf = True
        try:
            self._ctx = _internals.LlamaContext(model=model, params=cp, verbose=False)
        except ValueError as e:
            model.close()
            raise EngineFailure(f"could not create an embedding context for {name!r}: {e}") from e
        self._memory = llama_cpp.llama_get_memory(self._ctx.ctx)
        self._batch = llama_cpp.llama_batch_init(n_ctx, 0, 1)
        self._closed = False
        self.name = name
        self.n_ctx = n_ctx
        self.n_seq_max = int(cp.n_seq_max)
        self.n_embd = int(llama_cpp.llama_model_n_embd_out(model.model))
        self.n_vocab = model.n_vocab()

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` with the vocabulary's own BOS/EOS/SEP tokens added (as
        llama.cpp's server tokenizes embedding inputs); special-token text is not parsed."""
        return list(self._model.tokenize(text.encode("utf-8"), True, False))

    def embed_batch(self, inputs: list[list[int]]) -> np.ndarray:
        """Pooled embeddings of ``inputs`` (token-id lists) from one decode: a float32 array
        of shape ``(len(inputs), n_embd)``, not normalised.

        Raises:
            ValueError: more than ``n_seq_max`` inputs, more than ``n_ctx`` tokens in all, or
                an empty input (the caller's plan is wrong). EngineFailure: llama.cpp failed,
                or the model was unloaded.
        """
        if self._closed:
            raise EngineFailure(f"{self.name} was unloaded")
        if len(inputs) > self.n_seq_max or sum(map(len, inputs)) > self.n_ctx:
            raise ValueError("the batch does not fit the embedding context")
        if not all(inputs):
            raise ValueError("an input has no tokens")
        b = self._batch
        i = 0
        for seq, tokens in enumerate(inputs):
            for pos, token in enumerate(tokens):
                b.token[i] = token
                b.pos[i] = pos
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = seq
                b.logits[i] = True
                i += 1
        b.n_tokens = i
        if self._memory:
            llama_cpp.llama_memory_clear(self._memory, True)
        rc = llama_cpp.llama_decode(self._ctx.ctx, b)
        if rc != 0:
            raise EngineFailure(f"llama_decode failed with status {rc} while embedding")
        out = np.empty((len(inputs), self.n_embd), dtype=np.float32)
        for seq in range(len(inputs)):
            ptr = llama_cpp.llama_get_embeddings_seq(self._ctx.ctx, seq)
            if not ptr:
                raise EngineFailure("llama.cpp returned no pooled embedding")
            out[seq] = np.ctypeslib.as_array(ptr, shape=(self.n_embd,))
        return out

    def close(self) -> None:
        """Free the batch, the context and the model (idempotent)."""
        if self._closed:
            return
        self._closed = True
        llama_cpp.llama_batch_free(self._batch)
        self._ctx.close()
        self._model.close()
