"""Embeddings on the real path: `cove serve` with the bundled SmolLM2 model on loopback, driven by
the official ``openai`` and ``ollama`` clients and by LangChain's ``OpenAIEmbeddings``."""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Iterator
from typing import Any

import httpx
import llama_cpp
import numpy as np
import ollama
import openai
import pytest

from cove.models.registry import bundled_model_path
from tests.conftest import LiveServer

pytestmark = pytest.mark.real_model

MODEL = "smollm2:135m"
TEXTS = ["The sky is blue.", "Grass is green and the sun is warm."]


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server.base_url + "/v1", api_key="unused", max_retries=0,
                         timeout=120)


@pytest.fixture(scope="module")
def floats(client: openai.OpenAI) -> np.ndarray:
    r = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    return np.array([d.embedding for d in r.data])


@pytest.fixture(scope="module")
def vocab() -> Iterator[llama_cpp.Llama]:
    llm = llama_cpp.Llama(model_path=str(bundled_model_path()), vocab_only=True, verbose=False)
    yield llm
    llm.close()


def test_openai_float(client: openai.OpenAI, floats: np.ndarray) -> None:
    r = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float", user="me")
    assert r.object == "list" and r.model == MODEL and [d.index for d in r.data] == [0, 1]
    assert floats.shape == (2, 576) and np.allclose(np.linalg.norm(floats, axis=1), 1, atol=1e-5)
    assert r.usage.prompt_tokens == r.usage.total_tokens > 8
    assert float(floats[0] @ floats[1]) < 0.999


def test_openai_base64_is_decoded_by_the_client(client: openai.OpenAI, floats: np.ndarray) -> None:
    r = client.embeddings.create(model=MODEL, input=TEXTS)  # the client asks for base64
    decoded = np.array([d.embedding for d in r.data])
    assert np.allclose(decoded, floats, atol=1e-6)
    raw = client.embeddings.create(model=MODEL, input=TEXTS[0], encoding_format="base64")
    assert isinstance(raw.data[0].embedding, str | list)


def test_openai_token_arrays(client: openai.OpenAI, floats: np.ndarray,
                             vocab: llama_cpp.Llama) -> None:
    ids = [vocab.tokenize(t.encode(), add_bos=True, special=False) for t in TEXTS]
    many = client.embeddings.create(model=MODEL, input=ids, encoding_format="float")
    got = np.array([d.embedding for d in many.data])
    assert np.allclose(got, floats, atol=1e-5)
    assert many.usage.prompt_tokens == sum(map(len, ids))
    one = client.embeddings.create(model=MODEL, input=ids[0], encoding_format="float")
    assert np.allclose(one.data[0].embedding, floats[0], atol=1e-5)
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=MODEL, input=[[1, 10**6]])
    assert e.value.body["param"] == "input"  # type: ignore[index]


def test_openai_dimensions(client: openai.OpenAI, floats: np.ndarray) -> None:
    r = client.embeddings.create(model=MODEL, input=TEXTS, dimensions=64,
                                 encoding_format="float")
    cut = np.array([d.embedding for d in r.data])
    expected = floats[:, :64] / np.linalg.norm(floats[:, :64], axis=1, keepdims=True)
    assert cut.shape == (2, 64) and np.allclose(cut, expected, atol=1e-5)
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=MODEL, input="x", dimensions=577)
    assert e.value.body["param"] == "dimensions"  # type: ignore[index]


def test_openai_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=MODEL, input="word " * 3000)  # context 1024
    assert e.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MODEL, input=[])
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")


def test_ollama_embed_options(live_server: LiveServer, floats: np.ndarray) -> None:
    c = ollama.Client(host=live_server.base_url, timeout=120)
    r = c.embed(model=MODEL, input=TEXTS, keep_alive="2m")
    assert np.allclose(np.array(r.embeddings), floats, atol=1e-5)
    assert r.prompt_eval_count and r.prompt_eval_count > 8
    cut = c.embed(model=MODEL, input=TEXTS[0], dimensions=32).embeddings[0]
    assert len(cut) == 32 and np.isclose(np.linalg.norm(cut), 1)
    long = "word " * 3000
    assert len(c.embed(model=MODEL, input=long, options={"num_ctx": 512}).embeddings) == 1
    with pytest.raises(ollama.ResponseError) as e:
        c.embed(model=MODEL, input=long, truncate=False)
    assert e.value.status_code == 400
    assert c.embed(model=MODEL, input=[]).embeddings == []


def test_a_client_that_leaves_stops_the_work(live_server: LiveServer) -> None:
    """Many long inputs (minutes of work on two cores); the client gives up after 3 s: the
    model is idle again within a batch or two, not after the whole request."""
    base = live_server.base_url
    texts = [f"Document {i}. " + "The quick brown fox jumps over the lazy dog. " * 45
             for i in range(100)]

    def busy() -> bool:
        models = httpx.get(base + "/api/ps", timeout=10).json()["models"]
        return any(m["busy"] for m in models if m["name"] == MODEL)

    httpx.post(base + "/api/embed", json={"model": MODEL, "input": "load"}, timeout=120)
    with cf.ThreadPoolExecutor(1) as pool:
        gone = pool.submit(httpx.post, base + "/api/embed", json={"model": MODEL, "input": texts},
                           timeout=3)
        time.sleep(1.5)
        assert busy()
        with pytest.raises(httpx.TimeoutException):
            gone.result()
    left = time.monotonic()
    while busy() and time.monotonic() - left < 60:
        time.sleep(0.2)
    assert not busy()


@pytest.fixture
def local_bpe(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A byte-level tiktoken encoding built here (nothing downloaded), as LangChain's default
    client would use ``cl100k_base``: every UTF-8 byte is one token, its id the byte."""
    import tiktoken

    enc = tiktoken.Encoding(name="bytes", pat_str=r"\S+|\s+",
                            mergeable_ranks={bytes([i]): i for i in range(256)},
                            special_tokens={})
    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: enc)
    return enc


def test_langchain_openai_embeddings(live_server: LiveServer, floats: np.ndarray) -> None:
    from langchain_openai import OpenAIEmbeddings

    emb = OpenAIEmbeddings(model=MODEL, base_url=live_server.base_url + "/v1", api_key="unused",
                           check_embedding_ctx_length=False, max_retries=0)
    docs = np.array(emb.embed_documents(TEXTS))
    assert np.allclose(docs, floats, atol=1e-5)
    assert np.allclose(emb.embed_query(TEXTS[1]), floats[1], atol=1e-5)


def test_langchain_default_client_sends_token_arrays(live_server: LiveServer,
                                                     client: openai.OpenAI,
                                                     local_bpe: Any) -> None:
    """LangChain's default client tokenizes with tiktoken and sends token ids; Cove takes them
    as ids of the model's own vocabulary (hence check_embedding_ctx_length=False above)."""
    from langchain_openai import OpenAIEmbeddings

    emb = OpenAIEmbeddings(model=MODEL, base_url=live_server.base_url + "/v1", api_key="unused",
                           max_retries=0)
    got = np.array(emb.embed_documents(TEXTS))
    ids = [list(t.encode()) for t in TEXTS]
    r = client.embeddings.create(model=MODEL, input=ids, encoding_format="float")
    assert np.allclose(got, [d.embedding for d in r.data], atol=1e-5)
