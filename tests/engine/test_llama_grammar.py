"""Grammar-constrained sampling on the real engine: the chain draws first and the grammar checks
that one token, falling back to constraining the whole vocabulary when it is refused."""

from __future__ import annotations

import json

import pytest

from cove.engine.llama import LlamaEngine
from cove.engine.template import render_chat
from cove.engine.types import SamplingParams
from cove.models.registry import bundled_model_path

pytestmark = pytest.mark.real_model


def generate(eng: LlamaEngine, question: str, params: SamplingParams, limit: int = 48) -> str:
    prompt = eng.tokenize(render_chat(eng.info.chat_template,
                                      [{"role": "user", "content": question}]),
                          add_bos=eng.info.add_bos, special=True)
    eng.forget(0)
    eng.start(0, prompt, params)
    eng.decode([(0, prompt, True)])
    out = b""
    for _ in range(limit):
        token = eng.sample(0)
        if eng.is_end(token):
            break
        out += eng.piece(token)
        eng.decode([(0, [token], True)])
    eng.release(0)
    return out.decode("utf-8", errors="replace")


def test_grammar_holds_when_the_chain_would_pick_otherwise() -> None:
    eng = LlamaEngine(bundled_model_path(), "smollm2:135m", n_ctx=512, n_slots=1, n_threads=2)
    try:
        # the model wants to write a poem: its first choices are refused, every time
        answers = {generate(eng, "Write a long poem about the sea.",
                            SamplingParams(temperature=0.8, seed=seed,
                                           grammar='root ::= "yes" | "no"'))
                   for seed in range(6)}
        bounded = 'root ::= "{\\"age\\": " [1-9] [0-9]? "}"'
        objects = [generate(eng, "How old is your cat? Answer in JSON.",
                            SamplingParams(temperature=1.0, seed=seed, grammar=bounded))
                   for seed in range(4)]
    finally:
        eng.close()
    assert answers <= {"yes", "no"} and answers
    for text in objects:
        assert 1 <= json.loads(text)["age"] <= 99


def test_names_and_values_with_quotes_and_backslashes_are_written_exactly() -> None:
    from cove.engine.llama import json_grammar

    key, values = 'say "hi"\\now', ["C:\\temp", 'a "quoted" word']
    schema = {"type": "object", "properties": {key: {"enum": values}}, "required": [key],
              "additionalProperties": False}
    eng = LlamaEngine(bundled_model_path(), "smollm2:135m", n_ctx=512, n_slots=1, n_threads=1)
    try:
        texts = [generate(eng, "Pick one.", SamplingParams(temperature=1.0, seed=seed,
                                                           grammar=json_grammar(schema)))
                 for seed in range(3)]
    finally:
        eng.close()
    for text in texts:
        answer = json.loads(text)
        assert list(answer) == [key] and answer[key] in values
