"""A scripted engine for deterministic tests of everything above the model.

Enqueue what the model will "say" as a list of byte pieces (one per token); read back the
prompts it was given in ``history``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from cove.engine.types import ModelInfo, SamplingParams, Token

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class ScriptedEngine:
    """Engine whose output is scripted: ``enqueue([b"Hel", b"lo"])`` then generate.

    Tokenization is one token per UTF-8 byte of the text (so prompt sizes are predictable).
    When the script runs out, an end-of-generation token is produced. ``delay`` seconds are
    slept before each token (to test concurrency and cancellation).
    """

    def __init__(
        self,
        name: str = "scripted",
        n_ctx: int = 2048,
        chat_template: str | None = CHATML,
        delay: float = 0.0,
    ) -> None:
        self.info = ModelInfo(
            name=name,
            n_ctx=n_ctx,
            n_ctx_train=n_ctx,
            chat_template=chat_template,
            bos_token="",
            eos_token="<|im_end|>",
        )
        self.delay = delay
        self.scripts: list[list[bytes | Exception]] = []
        self.history: list[tuple[list[int], SamplingParams]] = []
        self.closed = False

    def enqueue(self, pieces: list[bytes | str | Exception]) -> None:
        """Script the next generation: one list item per token; an exception item is raised
        when reached (to test failures mid-stream)."""
        self.scripts.append([p.encode() if isinstance(p, str) else p for p in pieces])

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = True) -> list[int]:
        return list(text.encode("utf-8"))

    def tokens(
        self, prompt: list[int], params: SamplingParams, cancel: threading.Event
    ) -> Iterator[Token]:
        self.history.append((list(prompt), params))
        script = self.scripts.pop(0) if self.scripts else []
        for i, piece in enumerate(script):
            if cancel.is_set():
                return
            if self.delay:
                time.sleep(self.delay)
            if isinstance(piece, Exception):
                raise piece
            yield Token(1000 + i, piece)
        yield Token(0, b"", is_end=True)

    def close(self) -> None:
        self.closed = True
