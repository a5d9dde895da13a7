"""A scripted embedder (the :class:`cove.models.manager.Embedder` protocol) for exact cases:
one token per character, vectors computed from the token ids, every batch recorded, and a
gate that holds batches until a test lets them run."""

from __future__ import annotations

import threading
import time


class ScriptedEmbedder:
    """``tokenize`` gives one token per character (its code point modulo ``n_vocab``);
    ``embed_batch`` returns ``[len, first id, last id, 1, 0, ...]`` per input (``n_embd``
    components, not normalised), after waiting for ``gate`` (when set) and ``delay`` seconds.
    ``batches`` holds the inputs of every batch run, ``started`` is set when one begins."""

    def __init__(self, *, n_ctx: int = 64, n_embd: int = 6, n_seq_max: int = 4,
                 n_vocab: int = 1000, delay: float = 0.0) -> None:
        self.n_ctx = n_ctx
        self.n_embd = n_embd
        self.n_seq_max = n_seq_max
        self.n_vocab = n_vocab
        self.delay = delay
        self.gate: threading.Event | None = None
        self.started = threading.Event()
        self.batches: list[list[list[int]]] = []
        self.closed = False

    def tokenize(self, text: str) -> list[int]:
        return [ord(c) % self.n_vocab for c in text]

    def embed_batch(self, inputs: list[list[int]]) -> list[list[float]]:
        assert not self.closed, "embedding with a closed model"
        assert len(inputs) <= self.n_seq_max and sum(map(len, inputs)) <= self.n_ctx
        assert all(inputs)
        self.batches.append(inputs)
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        if self.delay:
            time.sleep(self.delay)
        rest = [0.0] * (self.n_embd - 4)
        return [[float(len(t)), float(t[0]), float(t[-1]), 1.0, *rest] for t in inputs]

    def close(self) -> None:
        self.closed = True
