"""Log-probabilities, logit bias and fill-in-the-middle tokens on the real engine."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cove.engine.llama import LlamaEngine
from cove.engine.types import SamplingParams, TokenLogprob
from cove.models.registry import bundled_model_path
from tests.engine.test_llama_batching import prompt
from tests.gguf_files import FIM_KEYS, rewrite_gguf

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def eng(engine: LlamaEngine) -> LlamaEngine:
    return engine


def run(eng: LlamaEngine, params: SamplingParams, limit: int = 12,
        question: str = "Name three colours.") -> list[tuple[int, TokenLogprob | None]]:
    tokens = prompt(eng, question)
    eng.forget(0)
    eng.start(0, tokens, params)
    eng.decode([(0, tokens, True)])
    out = []
    for _ in range(limit):
        token = eng.sample(0)
        out.append((token, eng.logprobs(0)))
        if eng.is_end(token):
            break
        eng.decode([(0, [token], True)])
    eng.release(0)
    return out


def test_no_logprobs_unless_asked(eng: LlamaEngine) -> None:
    assert all(lp is None for _, lp in run(eng, SamplingParams(temperature=0), limit=3))


def test_greedy_token_is_the_most_likely_and_alternatives_are_ordered(eng: LlamaEngine) -> None:
    steps = run(eng, SamplingParams(temperature=0, logprobs=5))
    assert len(steps) > 3
    for token, lp in steps:
        assert lp is not None and len(lp.top) == 5
        values = [v for _, v in lp.top]
        assert values == sorted(values, reverse=True)
        assert all(v <= 0 for v in values)
        assert sum(math.exp(v) for v in values) <= 1.0 + 1e-6
        # greedy: the drawn token is the first alternative, with the same log-probability
        assert lp.top[0] == (lp.token, lp.logprob)
        assert lp.token == eng.piece(token, special=True)


def test_logprobs_are_of_the_model_not_of_the_truncated_distribution(eng: LlamaEngine) -> None:
    # top_k 1 leaves one candidate (probability 1 after the filters); the report is the
    # model's distribution before them, as OpenAI's is
    steps = run(eng, SamplingParams(temperature=1.0, top_k=1, seed=3, logprobs=2), limit=4)
    assert all(lp is not None and lp.logprob < 0 and len(lp.top) == 2 for _, lp in steps)
    greedy = run(eng, SamplingParams(temperature=0, logprobs=2), limit=4)
    assert [lp.logprob for _, lp in steps] == pytest.approx(  # type: ignore[union-attr]
        [lp.logprob for _, lp in greedy])  # type: ignore[union-attr]


def test_zero_alternatives_still_give_the_token(eng: LlamaEngine) -> None:
    (token, lp), *_ = run(eng, SamplingParams(temperature=0, logprobs=0), limit=1)
    assert lp is not None and lp.top == () and lp.logprob <= 0


def test_logit_bias_bans_and_forces_tokens(eng: LlamaEngine) -> None:
    plain = [t for t, _ in run(eng, SamplingParams(temperature=0))]
    first = plain[0]
    banned = run(eng, SamplingParams(temperature=0, logit_bias=((first, -100.0),), logprobs=3))
    assert banned[0][0] != first
    # the report includes the bias: the banned token is no longer among the likely ones
    assert banned[0][1] is not None
    assert eng.piece(first, special=True) not in [t for t, _ in banned[0][1].top]
    forced_id = eng.tokenize(" banana", add_bos=False, special=False)[0]
    forced = run(eng, SamplingParams(temperature=0.8, seed=1,
                                     logit_bias=((forced_id, 100.0),)), limit=5)
    assert [t for t, _ in forced] == [forced_id] * 5
    # a token id outside the vocabulary is left out (the API refuses it before)
    same = run(eng, SamplingParams(temperature=0, logit_bias=((10**9, 50.0),)))
    assert [t for t, _ in same] == plain


def test_logprobs_reflect_the_penalties_that_shape_the_draw(eng: LlamaEngine) -> None:
    plain = run(eng, SamplingParams(temperature=0, logprobs=1), limit=8)
    penalised = run(eng, SamplingParams(temperature=0, logprobs=1, repeat_penalty=1.5), limit=8)
    assert plain[0][1] == penalised[0][1]  # nothing generated yet: nothing to penalise
    assert [lp.logprob for _, lp in plain] != [  # type: ignore[union-attr]
        lp.logprob for _, lp in penalised]  # type: ignore[union-attr]


def test_logprobs_with_a_grammar(eng: LlamaEngine) -> None:
    steps = run(eng, SamplingParams(temperature=0, logprobs=2, grammar='root ::= "yes" | "no"'),
                question="Write a poem.")
    text = b"".join(eng.piece(t) for t, _ in steps if not eng.is_end(t))
    assert text in (b"yes", b"no")
    # the grammar comes after the report: it holds the model's wish, not only yes or no
    assert all(lp is not None for t, lp in steps)
    assert steps[0][1] is not None and len(steps[0][1].top) == 2


def test_logprobs_go_along_when_a_request_moves(eng: LlamaEngine) -> None:
    tokens = eng.tokenize("The sky is", add_bos=False, special=False)
    eng.forget(0)
    eng.forget(1)
    eng.start(1, tokens, SamplingParams(temperature=0, logprobs=1))
    eng.decode([(1, tokens, True)])
    token = eng.sample(1)
    eng.move(1, 0)
    eng.decode([(0, [token], True)])
    eng.sample(0)
    lp = eng.logprobs(0)
    eng.release(0)
    assert lp is not None and len(lp.top) == 1
    assert eng.logprobs(1) is None and eng.logprobs(0) is None


def test_bundled_model_has_no_fim_tokens(eng: LlamaEngine) -> None:
    assert eng.info.fim is None
    assert eng.info.n_vocab == 49152


def test_fim_tokens_are_read_from_gguf_keys(tmp_path: Path) -> None:
    path = rewrite_gguf(bundled_model_path(), tmp_path / "fim.gguf",
                        ints=dict(zip(FIM_KEYS, (3, 4, 5), strict=True)))
    e = LlamaEngine(path, "fim", n_ctx=256, n_slots=1, n_threads=2)
    try:
        assert e.info.fim == (3, 4, 5)
    finally:
        e.close()
