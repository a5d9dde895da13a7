"""The core's text embedder: small static word embeddings for ranking text by meaning.

A service features share (tool selection now; search, ideas and memes later), apart from the
models a user chats with: WordLlama's ``l2_supercat`` model at 256 dimensions (token embeddings
distilled from large language models' input embeddings, averaged over the tokens of a text;
D. Lee Miller, https://github.com/dleemiller/WordLlama, MIT licence). Its weights
(``weights/l2_supercat_256.safetensors``, 32k tokens x 256) and tokenizer ship inside the
``wordllama`` wheel, so nothing is downloaded. ``WordLlama.load()`` with its defaults looks for
the tokenizer in a ``tokenizer/`` folder the wheel does not have and then downloads it from the
hub, so the model is loaded here with the package's own folder as its cache and downloads
disabled.

Loading takes a few tens of milliseconds and 32 MB; it happens on first use (never at import),
once per process. Embedding is a table look-up and a mean: thousands of short texts a second.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

DIMENSIONS = 256
_lock = threading.Lock()
_model: Any = None


def _import_wordllama() -> Any:
    """Import ``wordllama`` without the root-logger set-up its ``__init__`` does.

    wordllama 0.3 calls ``logging.basicConfig(level=logging.INFO)`` at import, which would make
    every library's INFO records (e.g. the model manager's "loaded ..." line) appear on the
    terminal of ``cove run --search`` and ``cove knowledge``; the root logger's handlers and
    level are put back as they were.
    """
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import wordllama
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    return wordllama


def _load() -> Any:
    """The WordLlama inference object, loaded once (thread-safe)."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                from pathlib import Path

                wordllama = _import_wordllama()
                package = Path(wordllama.__file__).parent  # holds weights/ and tokenizers/
                _model = wordllama.WordLlama.load(config="l2_supercat", dim=DIMENSIONS,
                                                  cache_dir=package, disable_download=True)
    return _model


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length embeddings of ``texts``: a float32 array of shape ``(len(texts), 256)``.

    A blank text (empty, or only white space) gets the zero vector, so its similarity to
    anything is 0.
    """
    import numpy as np

    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    vectors = np.asarray(_load().embed(texts, norm=False), dtype=np.float32)
    vectors = np.nan_to_num(vectors)
    vectors[[not t.strip() for t in texts]] = 0.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def similarity(query: str, texts: list[str]) -> list[float]:
    """Cosine similarity of ``query`` to each of ``texts`` (-1..1; 0 for an empty text)."""
    if not texts:
        return []
    vectors = embed([query, *texts])
    return [float(s) for s in vectors[1:] @ vectors[0]]
