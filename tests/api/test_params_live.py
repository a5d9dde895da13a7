"""OpenAI parameters on the real path: the bundled SmolLM2 behind ``cove serve``, driven by the
official ``openai`` (and ``ollama``) clients: logprobs, logit_bias, n, suffix."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import ollama
import openai
import pytest

from cove.models.registry import bundled_model_path
from tests.conftest import LiveServer, free_port, server_env, start_server, stop_server
from tests.gguf_files import FIM_KEYS, rewrite_gguf

pytestmark = pytest.mark.real_model

MODEL = "smollm2:135m"
MSG = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server.base_url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def vocab() -> Any:
    """The bundled model's tokenizer (vocabulary only), to name token ids."""
    import llama_cpp

    llm = llama_cpp.Llama(str(bundled_model_path()), vocab_only=True, verbose=False)
    yield llm
    llm.close()


def token_id(vocab: Any, text: str) -> int:
    (tid,) = vocab.tokenize(text.encode(), add_bos=False, special=False)
    return int(tid)


def greedy(client: openai.OpenAI, **kw: Any) -> Any:
    return client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=12,
                                          temperature=0, **kw)


# -- logprobs --------------------------------------------------------------------------------------


def test_chat_logprobs_are_a_distribution_led_by_the_greedy_token(client: openai.OpenAI) -> None:
    r = greedy(client, logprobs=True, top_logprobs=5)
    choice = r.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    content = choice.logprobs.content
    assert "".join(t.token for t in content) == choice.message.content
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 5
        values = [a.logprob for a in t.top_logprobs]
        assert values == sorted(values, reverse=True)
        assert sum(math.exp(v) for v in values) <= 1 + 1e-6
        assert t.top_logprobs[0].token == t.token  # greedy picks the most likely
        assert t.top_logprobs[0].logprob == pytest.approx(t.logprob)
        assert bytes(t.bytes or []).decode() == t.token


def test_chat_logprobs_streamed_match_the_whole_answer(client: openai.OpenAI) -> None:
    whole = greedy(client, logprobs=True, top_logprobs=2)
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=MSG, max_tokens=12, temperature=0, stream=True, logprobs=True,
        top_logprobs=2))
    streamed = [t for c in chunks if c.choices and c.choices[0].logprobs
                for t in c.choices[0].logprobs.content or []]
    assert whole.choices[0].logprobs is not None
    expect = whole.choices[0].logprobs.content or []
    assert [t.token for t in streamed] == [t.token for t in expect]
    assert [t.logprob for t in streamed] == pytest.approx([t.logprob for t in expect])


def test_no_logprobs_unless_asked(client: openai.OpenAI) -> None:
    assert greedy(client).choices[0].logprobs is None


def test_completion_logprobs_streamed_and_not(client: openai.OpenAI) -> None:
    kw: dict[str, Any] = {"model": MODEL, "prompt": "The capital of France is",
                          "max_tokens": 8, "temperature": 0, "logprobs": 3}
    r = client.completions.create(**kw)
    lp = r.choices[0].logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs
    assert lp.text_offset is not None
    text = r.choices[0].text
    assert "".join(lp.tokens) == text
    assert lp.text_offset == [len("".join(lp.tokens[:i])) for i in range(len(lp.tokens))]
    for token, value, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True):
        assert value <= 0 and token in top and 3 <= len(top) <= 4
        assert max(top.values()) == pytest.approx(value)  # greedy
    chunks = list(client.completions.create(stream=True, **kw))
    tokens = [t for c in chunks if c.choices and c.choices[0].logprobs
              for t in c.choices[0].logprobs.tokens or []]
    assert tokens == lp.tokens
    assert "".join(c.choices[0].text for c in chunks if c.choices) == text


# -- logit_bias ------------------------------------------------------------------------------------


def test_logit_bias_bans_the_greedy_token(client: openai.OpenAI, vocab: Any) -> None:
    plain = greedy(client, logprobs=True)
    assert plain.choices[0].logprobs is not None and plain.choices[0].logprobs.content
    first = plain.choices[0].logprobs.content[0].token
    banned = greedy(client, logprobs=True, logit_bias={str(token_id(vocab, first)): -100})
    assert banned.choices[0].message.content != plain.choices[0].message.content
    assert banned.choices[0].logprobs is not None and banned.choices[0].logprobs.content
    assert banned.choices[0].logprobs.content[0].token != first


def test_logit_bias_forces_a_token(client: openai.OpenAI, vocab: Any) -> None:
    r = client.chat.completions.create(
        model=MODEL, messages=MSG, max_tokens=4, temperature=0.8, seed=5,
        logit_bias={str(token_id(vocab, " banana")): 100})
    assert r.choices[0].message.content == " banana" * 4


def test_bad_logit_bias_is_400(client: openai.OpenAI) -> None:
    for bias in ({"cat": 1}, {"5": 500}, {"99999999": 1}):
        with pytest.raises(openai.BadRequestError) as ei:
            greedy(client, logit_bias=bias)
        assert ei.value.param == "logit_bias"  # type: ignore[attr-defined]


# -- n ---------------------------------------------------------------------------------------------


def test_n_greedy_choices_are_identical(client: openai.OpenAI) -> None:
    one = greedy(client)
    r = greedy(client, n=3)
    assert [c.index for c in r.choices] == [0, 1, 2]
    texts = {c.message.content for c in r.choices}
    assert texts == {one.choices[0].message.content}
    assert r.usage is not None and one.usage is not None
    assert r.usage.prompt_tokens == one.usage.prompt_tokens
    assert r.usage.completion_tokens == 3 * one.usage.completion_tokens


def test_n_streamed_interleaves_choices_by_index(client: openai.OpenAI) -> None:
    one = greedy(client).choices[0].message.content
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=MSG, max_tokens=12, temperature=0, n=2, stream=True,
        stream_options={"include_usage": True}))
    texts = {0: "", 1: ""}
    finishes = {0: 0, 1: 0}
    for c in chunks:
        for choice in c.choices:
            texts[choice.index] += choice.delta.content or ""
            finishes[choice.index] += choice.finish_reason is not None
    assert texts == {0: one, 1: one}
    assert finishes == {0: 1, 1: 1}
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []


def test_n_seeded_choices_differ_and_reproduce(client: openai.OpenAI) -> None:
    def ask(n: int, seed: int) -> list[str]:
        r = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Tell me a story."}],
            max_tokens=16, temperature=1.0, seed=seed, n=n)
        return [c.message.content or "" for c in r.choices]

    three = ask(3, 40)
    assert len(set(three)) > 1
    assert ask(3, 40) == three
    assert ask(1, 41) == three[1:2]  # choice i is what seed + i gives alone


def test_n_over_the_slots_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as ei:
        greedy(client, n=64)
    assert ei.value.param == "n"  # type: ignore[attr-defined]


# -- suffix ----------------------------------------------------------------------------------------


def test_suffix_on_a_model_without_fim_tokens_is_400(client: openai.OpenAI,
                                                     live_server: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError) as ei:
        client.completions.create(model=MODEL, prompt="def f(", suffix="\n", max_tokens=4)
    assert ei.value.param == "suffix"  # type: ignore[attr-defined]
    with pytest.raises(ollama.ResponseError) as oe:
        ollama.Client(host=live_server.base_url).generate(model=MODEL, prompt="def f(",
                                                          suffix="\n")
    assert oe.value.status_code == 400 and "suffix" in str(oe.value)


@pytest.fixture(scope="module")
def fim_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose only extra model, ``fim:latest``, is the bundled model with FIM token
    ids set in its GGUF metadata (imported with ``cove import``)."""
    home = tmp_path_factory.mktemp("fim-home")
    path = rewrite_gguf(bundled_model_path(), tmp_path_factory.mktemp("gguf") / "fim.gguf",
                        ints=dict(zip(FIM_KEYS, (3, 4, 5), strict=True)))
    subprocess.run([sys.executable, "-m", "cove", "import", str(path), "fim"], check=True,
                   env=server_env(home), capture_output=True)
    port = free_port()
    proc = start_server(home, port)
    yield LiveServer(f"http://127.0.0.1:{port}", proc, server_env(home))
    stop_server(proc)


def test_suffix_fills_in_the_middle(fim_server: LiveServer) -> None:
    fim = openai.OpenAI(base_url=fim_server.base_url + "/v1", api_key="unused", max_retries=0)
    r = fim.completions.create(model="fim", prompt="def add(a, b):\n", suffix="\n\nprint(1)",
                               max_tokens=6, temperature=0)
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage is not None
    # [FIM_PRE] prefix [FIM_SUF] suffix [FIM_MID]: three tokens more than prefix and suffix
    plain = fim.completions.create(model="fim", prompt="def add(a, b):\n\n\nprint(1)",
                                   max_tokens=1, temperature=0)
    assert plain.usage is not None
    assert r.usage.prompt_tokens >= plain.usage.prompt_tokens + 2
    reply = ollama.Client(host=fim_server.base_url).generate(
        model="fim", prompt="def add(a, b):\n", suffix="\n\nprint(1)",
        options={"num_predict": 6, "temperature": 0})
    assert reply.done and reply.response == r.choices[0].text
    assert reply.prompt_eval_count == r.usage.prompt_tokens
