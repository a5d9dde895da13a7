"""The ceiling: a raw batched llama_decode loop with no server, straight on llama-cpp-python's
low-level bindings (independent of Cove's engine code)."""

from __future__ import annotations

import time

import llama_cpp
from llama_cpp import _internals
from llama_cpp._logger import set_verbose


def raw_batched_tokens_per_s(model_path: str, n_seq: int, n_tokens: int = 64,
                             n_threads: int = 2, n_ctx_seq: int = 512) -> float:
    """Greedy-decode ``n_tokens`` for ``n_seq`` sequences in lock-step; aggregate tokens/s of the
    decode phase (prompt processing excluded)."""
    set_verbose(False)
    model = _internals.LlamaModel(path_model=model_path,
                                  params=llama_cpp.llama_model_default_params(), verbose=False)
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = n_ctx_seq * n_seq
    cp.n_batch = cp.n_ubatch = 512
    cp.n_seq_max = n_seq
    cp.kv_unified = False
    cp.n_threads = cp.n_threads_batch = n_threads
    ctx = _internals.LlamaContext(model=model, params=cp, verbose=False)
    batch = llama_cpp.llama_batch_init(512, 0, 1)
    samplers = []
    try:
        last = []
        for s in range(n_seq):
            toks = model.tokenize(f"Write a story about topic number {s}.".encode(), False, True)
            batch.n_tokens = len(toks)
            for i, t in enumerate(toks):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = t, i, 1
                batch.seq_id[i][0] = s
                batch.logits[i] = i == len(toks) - 1
            assert llama_cpp.llama_decode(ctx.ctx, batch) == 0
            smp = _internals.LlamaSampler()
            smp.add_greedy()
            samplers.append(smp)
            last.append((llama_cpp.llama_sampler_sample(smp.sampler, ctx.ctx, len(toks) - 1),
                         len(toks)))
        t0 = time.perf_counter()
        for _ in range(n_tokens - 1):
            batch.n_tokens = n_seq
            for s, (tok, pos) in enumerate(last):
                batch.token[s], batch.pos[s], batch.n_seq_id[s] = tok, pos, 1
                batch.seq_id[s][0] = s
                batch.logits[s] = True
            assert llama_cpp.llama_decode(ctx.ctx, batch) == 0
            last = [(llama_cpp.llama_sampler_sample(samplers[s].sampler, ctx.ctx, s), pos + 1)
                    for s, (_, pos) in enumerate(last)]
        dt = time.perf_counter() - t0
        return n_seq * (n_tokens - 1) / dt
    finally:
        for smp in samplers:
            smp.close()
        llama_cpp.llama_batch_free(batch)
        ctx.close()
        model.close()
