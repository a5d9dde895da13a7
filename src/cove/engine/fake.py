"""A scripted engine for deterministic tests of everything above the model.

Enqueue what the model will "say" as a list of byte pieces (one per token); read back the
prompts it was given in ``history``, the batches it decoded in ``decodes`` and the KV copies in
``copies``. Scripts are taken in the order requests start. KV cells are modelled as lists of
tokens per slot, like the llama.cpp engine's prefix reuse (with a stream per slot).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from cove.engine.types import ModelInfo, SamplingParams, TokenLogprob
from cove.errors import InvalidRequest

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

END = 0


class ScriptedEngine:
    """Engine whose output is scripted: ``enqueue([b"Hel", b"lo"])`` then generate.

    Tokenization is one token per UTF-8 byte of the text (so prompt sizes are predictable).
    When a script runs out, an end-of-generation token is produced; an exception in a script
    is raised when reached. ``delay`` seconds are slept in every decode step (to test
    concurrency and cancellation).

    With an ``oracle`` (a function of the token list a slot's cells hold, returning a token:
    0 ends, 1-255 is that byte), every generation samples the oracle instead of scripts, so its
    output depends on exactly what the KV cells hold: a scheduler that restores, copies or
    moves the wrong cells changes the output (the property tests compare with a run alone).
    """

    def __init__(
        self,
        name: str = "scripted",
        n_ctx: int = 2048,
        chat_template: str | None = CHATML,
        delay: float = 0.0,
        n_slots: int = 4,
        n_batch: int = 512,
        oracle: Callable[[list[int]], int] | None = None,
        fim: tuple[int, int, int] | None = None,
    ) -> None:
        self.info = ModelInfo(
            name=name,
            n_ctx=n_ctx,
            n_ctx_train=n_ctx,
            chat_template=chat_template,
            bos_token="",
            eos_token="<|im_end|>",
            fim=fim,
        )
        self.delay = delay
        self.oracle = oracle
        self.n_slots = n_slots
        self.n_batch = n_batch
        self.shared_kv = False
        self.scripts: list[list[bytes | Exception]] = []
        self.history: list[tuple[list[int], SamplingParams]] = []
        self.decodes: list[list[tuple[int, int, bool]]] = []  # (slot, n_tokens, want) per step
        self.copies: list[tuple[int, int]] = []  # (src, dst) of every copy and move
        self.saves: list[int] = []  # slots whose state was saved to the host cache
        self.restores: list[int] = []  # slots a saved state was restored into
        self.closed = False
        self._running: dict[int, list[bytes | Exception]] = {}
        self._cached: dict[int, list[int]] = {}
        self._pieces: dict[int, bytes] = {}
        self._top: dict[int, int] = {}  # slot -> logprobs alternatives asked for
        self.logprob_of: Callable[[bytes], float] = lambda piece: -0.25
        self._last: dict[int, int] = {}  # slot -> last sampled token

    def enqueue(self, pieces: list[bytes | str | Exception]) -> None:
        """Script the next generation: one list item per token."""
        self.scripts.append([p.encode() if isinstance(p, str) else p for p in pieces])

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = True) -> list[int]:
        return list(text.encode("utf-8"))

    def piece(self, token: int) -> bytes:
        if token in self._pieces:
            return self._pieces[token]
        return bytes([token]) if 0 < token < 256 else b""  # a byte token from tokenize

    def is_end(self, token: int) -> bool:
        return token == END

    def cached(self, slot: int) -> list[int]:
        return self._cached.get(slot, [])

    def copy(self, src: int, dst: int, n: int | None = None) -> None:
        if src == dst:
            raise ValueError("copy needs two different slots")
        self.copies.append((src, dst))
        held = self.cached(src)
        self._cached[dst] = list(held if n is None else held[:n])

    def move(self, src: int, dst: int) -> None:
        self.copy(src, dst)
        self._running[dst] = self._running.pop(src, [])
        if src in self._top:
            self._top[dst] = self._top.pop(src)
        if src in self._last:
            self._last[dst] = self._last.pop(src)

    def save(self, slot: int) -> bytearray:
        self.saves.append(slot)
        return bytearray(json.dumps(self.cached(slot)).encode())

    def restore(self, slot: int, state: bytearray, tokens: list[int]) -> None:
        self.restores.append(slot)
        held = json.loads(state)
        assert held == tokens, "restored a state under other tokens"
        self._cached[slot] = held

    def start(self, slot: int, prompt: list[int], params: SamplingParams) -> int:
        self.history.append((list(prompt), params))
        self._running[slot] = self.scripts.pop(0) if self.scripts else []
        if params.logprobs is not None:
            self._top[slot] = params.logprobs
        held = self._cached.setdefault(slot, [])
        keep = 0
        while keep < min(len(held), len(prompt) - 1) and held[keep] == prompt[keep]:
            keep += 1
        del held[keep:]
        return keep

    def cut(self, tokens: list[int], n: int) -> int:
        return n  # no images

    def image_tokens(self, data: bytes, rgb: bytes, width: int, height: int) -> list[int]:
        raise InvalidRequest(f"{self.info.name} cannot read images", param="messages")

    def decode(self, feeds: list[tuple[int, list[int], bool]]) -> None:
        if self.delay:
            time.sleep(self.delay)
        self.decodes.append([(slot, len(tokens), want) for slot, tokens, want in feeds])
        for slot, tokens, _ in feeds:
            self._cached.setdefault(slot, []).extend(tokens)

    def sample(self, slot: int) -> int:
        if self.oracle is not None:
            return self.oracle(self.cached(slot))
        script = self._running.get(slot) or []
        self._last[slot] = END
        if not script:
            return END
        piece = script.pop(0)
        if isinstance(piece, Exception):
            raise piece
        token = 1000 + len(self._pieces)
        self._pieces[token] = piece
        self._last[slot] = token
        return token

    def logprobs(self, slot: int) -> TokenLogprob | None:
        """For a request with ``logprobs`` k: the last piece at ``logprob_of(piece)``
        (default -0.25), then k alternatives (the piece again, then ``b"?"``, ``b"??"``, ...
        each 1.0 less likely)."""
        k = self._top.get(slot)
        if k is None:
            return None
        piece = self._pieces.get(self._last.get(slot, END), b"")
        lp = self.logprob_of(piece)
        top = ((piece, lp), *((b"?" * i, lp - i) for i in range(1, k)))[:k]
        return TokenLogprob(piece, lp, top)

    def release(self, slot: int) -> None:
        self._running.pop(slot, None)
        self._top.pop(slot, None)

    def forget(self, slot: int) -> None:
        self._cached.pop(slot, None)

    def close(self) -> None:
        self.closed = True
