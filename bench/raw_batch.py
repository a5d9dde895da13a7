"""The ceiling: a raw batched llama_decode loop with no server, straight on llama-cpp-python's
low-level bindings (independent of Cove's engine and scheduler)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import llama_cpp
from llama_cpp import _internals
from llama_cpp._logger import set_verbose

from cove.engine.template import render_chat


@dataclass
class RawResult:
    tokens_per_s: float  # n_seq * n_tokens / (prompt processing + decoding)
    decode_tokens_per_s: float  # the decode phase alone


def raw_batched(model_path: str, chats: list[list[dict[str, str]]], n_tokens: int = 64,
                n_threads: int = 2, n_ctx_seq: int = 512) -> RawResult:
    """Serve ``chats`` the plainest way: render each with the model's chat template, prefill
    all prompts together (several sequences per ``llama_decode``, up to 512 tokens a call),
    then greedy-decode ``n_tokens`` for every sequence in lock-step. No prefix is shared and
    nothing is cached; the clock starts before the first prompt token."""
    set_verbose(False)
    n_seq = len(chats)
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
        template = model.metadata().get("tokenizer.chat_template")
        prompts = [model.tokenize(render_chat(template, chat).encode(), model.add_bos_token(),
                                  True) for chat in chats]
        for _ in range(n_seq):
            smp = _internals.LlamaSampler()
            smp.add_greedy()
            samplers.append(smp)
        last: list[tuple[int, int]] = []
        t0 = time.perf_counter()
        todo = [(s, i, t) for s, toks in enumerate(prompts) for i, t in enumerate(toks)]
        while todo:
            chunk, todo = todo[:512], todo[512:]
            batch.n_tokens = len(chunk)
            for k, (s, i, t) in enumerate(chunk):
                batch.token[k], batch.pos[k], batch.n_seq_id[k] = t, i, 1
                batch.seq_id[k][0] = s
                batch.logits[k] = i == len(prompts[s]) - 1
            assert llama_cpp.llama_decode(ctx.ctx, batch) == 0
            for k, (s, i, _) in enumerate(chunk):
                if i == len(prompts[s]) - 1:
                    tok = llama_cpp.llama_sampler_sample(samplers[s].sampler, ctx.ctx, k)
                    last.append((s, tok))
        last.sort()
        state = [(tok, len(prompts[s])) for s, tok in last]
        t1 = time.perf_counter()
        for _ in range(n_tokens - 1):
            batch.n_tokens = n_seq
            for s, (tok, pos) in enumerate(state):
                batch.token[s], batch.pos[s], batch.n_seq_id[s] = tok, pos, 1
                batch.seq_id[s][0] = s
                batch.logits[s] = True
            assert llama_cpp.llama_decode(ctx.ctx, batch) == 0
            state = [(llama_cpp.llama_sampler_sample(samplers[s].sampler, ctx.ctx, s), pos + 1)
                     for s, (_, pos) in enumerate(state)]
        t2 = time.perf_counter()
        return RawResult(n_seq * n_tokens / (t2 - t0), n_seq * (n_tokens - 1) / (t2 - t1))
    finally:
        for smp in samplers:
            smp.close()
        llama_cpp.llama_batch_free(batch)
        ctx.close()
        model.close()
