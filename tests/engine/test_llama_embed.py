"""The real embedder: several inputs in one decode give the vectors each gives alone, and the
same vectors as llama-cpp-python's own ``Llama.embed`` (mean pooling)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import numpy as np
import pytest

from cove.engine.llama_embed import LlamaEmbedder
from cove.errors import EngineFailure
from cove.models.registry import bundled_model_path

pytestmark = pytest.mark.real_model

TEXTS = ["The sky is blue.", "Grass is green and the sun is warm today.", "Cats sleep a lot.",
         "A recipe for bread: flour, water, salt and yeast, mixed and left to rise."]


@pytest.fixture(scope="module")
def embedder() -> Iterator[LlamaEmbedder]:
    e = LlamaEmbedder(bundled_model_path(), "smollm2:135m", n_ctx=512, n_threads=2)
    yield e
    e.close()


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_sizes(embedder: LlamaEmbedder) -> None:
    assert embedder.n_embd == 576 and embedder.n_vocab == 49152
    assert embedder.n_ctx == 512 and embedder.n_seq_max >= 4


def test_a_batch_gives_what_each_input_gives_alone(embedder: LlamaEmbedder) -> None:
    tokens = [embedder.tokenize(t) for t in TEXTS]
    together = unit(embedder.embed_batch(tokens))
    assert together.shape == (4, 576) and together.dtype == np.float32
    for i, t in enumerate(tokens):
        alone = unit(embedder.embed_batch([t]))[0]
        assert float(alone @ together[i]) > 0.9999
    cos = together @ together.T
    assert (cos[np.triu_indices(4, 1)] < 0.999).all()  # different texts, different vectors


def test_same_vectors_as_llama_cpp_python(embedder: LlamaEmbedder) -> None:
    ref = llama_cpp.Llama(model_path=str(bundled_model_path()), embedding=True, n_ctx=512,
                          n_batch=512, n_ubatch=512, n_threads=2, verbose=False,
                          pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN)
    try:
        expected = np.array(ref.embed(TEXTS[:2], normalize=True))
    finally:
        ref.close()
    got = unit(embedder.embed_batch([embedder.tokenize(t) for t in TEXTS[:2]]))
    assert (np.sum(expected * got, axis=1) > 0.999).all()


def test_a_batch_that_does_not_fit_is_refused(embedder: LlamaEmbedder) -> None:
    with pytest.raises(ValueError):
        embedder.embed_batch([[1] * 300, [1] * 300])
    with pytest.raises(ValueError):
        embedder.embed_batch([[1], []])


def test_closed_embedder_refuses_work() -> None:
    e = LlamaEmbedder(bundled_model_path(), "smollm2:135m", n_ctx=256, n_threads=2)
    tokens = e.tokenize("hello")
    assert tokens and e.embed_batch([tokens]).shape == (1, 576)
    e.close()
    e.close()  # idempotent
    with pytest.raises(EngineFailure):
        e.embed_batch([tokens])


def test_pooling_declared_by_the_gguf(tmp_path: Path, embedder: LlamaEmbedder) -> None:
    """CLS or last pooling when the GGUF says so; none (or no key) falls back to mean."""
    from tests.gguf_files import rewrite_gguf

    tokens = embedder.tokenize(TEXTS[1])
    mean = unit(embedder.embed_batch([tokens]))[0]
    for value, same in ((3, False), (0, True)):  # last; none
        path = rewrite_gguf(bundled_model_path(), tmp_path / f"p{value}.gguf",
                            ints={"llama.pooling_type": value})
        e = LlamaEmbedder(path, "pooled", n_ctx=256, n_threads=2)
        try:
            got = unit(e.embed_batch([tokens]))[0]
        finally:
            e.close()
        assert (float(got @ mean) > 0.9999) is same, value
