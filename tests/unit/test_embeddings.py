"""The core text embedder (WordLlama's 256-d model from its wheel): offline, lazy, unit
vectors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from cove import embeddings


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` run by a fresh interpreter with no home directory; it must succeed."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={"HOME": "/nonexistent", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return out


def test_vectors_are_unit_length_and_empty_text_is_zero() -> None:
    v = embeddings.embed(["a cat on a mat", "", "   "])
    assert v.shape == (3, embeddings.DIMENSIONS) and v.dtype == np.float32
    assert abs(float(np.linalg.norm(v[0])) - 1) < 1e-5
    assert not v[1].any() and not v[2].any()
    assert embeddings.embed([]).shape == (0, embeddings.DIMENSIONS)


def test_similarity_ranks_by_meaning() -> None:
    s = embeddings.similarity("my dog barks at night", [
        "puppies and dogs barking", "the stock market fell today", ""])
    assert s[0] > s[1] > -1 and s[2] == 0.0


def test_loaded_lazily_from_the_wheel_with_no_network() -> None:
    code = ("import sys, socket\n"
            "import cove.embeddings as e\n"
            "assert 'wordllama' not in sys.modules, 'loaded at import time'\n"
            "def refuse(*a, **k): raise OSError('network used')\n"
            "socket.socket.connect = refuse\n"
            "socket.create_connection = refuse\n"
            "print(e.similarity('hello', ['hi there'])[0] > 0)\n")
    out = _python(code)
    assert out.stdout.strip() == "True"


def test_loading_leaves_the_root_logger_alone() -> None:
    # wordllama's __init__ calls logging.basicConfig(level=INFO); without the guard every INFO
    # record (the model manager's "loaded ..." line) reached the terminal of `cove run --search`.
    code = ("import logging\n"
            "import cove.embeddings as e\n"
            "e.embed(['hello'])\n"
            "root = logging.getLogger()\n"
            "print(len(root.handlers), root.level)\n")
    out = _python(code)
    assert out.stdout.split() == ["0", str(30)]  # no handler added, level still WARNING
