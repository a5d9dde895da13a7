"""Logic mode service over a scripted engine (exact): voting, agreement, tool calls executed
and their results fed back, arithmetic checks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from cove.errors import InvalidRequest
from cove.features.logic.service import TOOLS, run_tool, solve
from cove.features.logic.verify import check_arithmetic, corrected
from cove.models.registry import ModelEntry, ModelRegistry
from cove.pipeline import ChatPipeline
from cove.tools import ToolCall


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[ChatPipeline, ScriptedEngine]]:
    engine = ScriptedEngine(name="scripted:latest")
    registry = ModelRegistry()
    registry.add(ModelEntry("scripted:latest", Path("/nonexistent/s.gguf"), "fake"))
    pipeline = ChatPipeline(Settings(home=tmp_path, default_model="scripted:latest"), registry,
                            lambda e, s: engine)
    yield pipeline, engine
    pipeline.close()


def prompt_of(engine: ScriptedEngine, i: int) -> str:
    return bytes(engine.history[i][0]).decode()


def test_majority_answer_and_agreement(world: tuple[ChatPipeline, ScriptedEngine]) -> None:
    pipeline, engine = world
    for text in ["6*7 = 42\nAnswer: 42", "Answer: 41", "so 42.0\nAnswer: 42.0", "no idea",
                 "Answer: 41"]:
        engine.enqueue([text])
    r = asyncio.run(solve(pipeline, "What is 6 times 7?", k=5, seed=10, parallel=1))
    assert r.answer == "42" and r.votes == 2 and r.agreement == pytest.approx(2 / 5)
    assert [s.answer for s in r.samples] == ["42", "41", "42", None, "41"]  # tie: first seen
    assert [s.seed for s in r.samples] == [10, 11, 12, 13, 14]
    assert [p.seed for _, p in engine.history] == [10, 11, 12, 13, 14]
    assert {p.temperature for _, p in engine.history} == {0.7}
    assert "Answer: <number>" in prompt_of(engine, 0)  # the system prompt asks for it
    assert "What is 6 times 7?" in prompt_of(engine, 0)
    assert r.model == "scripted:latest" and r.k == 5
    d = r.to_dict()
    assert json.loads(json.dumps(d))["samples"][0]["checks"][0] == {
        "expression": "6*7", "claimed": "42", "actual": "42", "ok": True}


@pytest.mark.parametrize("constrained", [False, True])
def test_tool_calls_are_executed_and_fed_back(world: tuple[ChatPipeline, ScriptedEngine],
                                              constrained: bool) -> None:
    pipeline, engine = world
    engine.enqueue(['{"name": "calculate", "arguments": {"expression": "17*23"}}'])
    engine.enqueue(['{"name": "convert_units", "arguments": '
                    '{"value": 2, "from_unit": "km", "to_unit": "m"}}'])
    engine.enqueue(["17 times 23 is 391.\nAnswer: 391"])
    r = asyncio.run(solve(pipeline, "What is 17*23?", k=1, seed=1, constrained=constrained))
    s = r.samples[0]
    assert [(t.name, t.result) for t in s.tool_runs] == [("calculate", "391"),
                                                         ("convert_units", "2000")]
    assert r.answer == "391" and r.agreement == 1.0
    assert len(engine.history) == 3
    first, second, third = (prompt_of(engine, i) for i in range(3))
    assert "calculate" in first and "run_python" in first  # tools offered
    assert bool(engine.history[0][1].grammar) == constrained
    # the tool result comes back to the model as a tool message after the call
    assert '<|im_start|>tool\n391<|im_end|>' in second
    assert '"expression": "17*23"' in second
    assert '<|im_start|>tool\n2000<|im_end|>' in third


def test_rounds_are_bounded(world: tuple[ChatPipeline, ScriptedEngine]) -> None:
    pipeline, engine = world
    call = '{"name": "calculate", "arguments": {"expression": "1+1"}}'
    for _ in range(3):
        engine.enqueue([call])
    r = asyncio.run(solve(pipeline, "1+1?", k=1, seed=1, max_rounds=2, constrained=True))
    assert len(engine.history) == 3
    assert engine.history[2][1].grammar is None  # the last round has no tools: it must answer
    assert len(r.samples[0].tool_runs) == 2
    # the last turn is still a call (not executed): the last tool result is the answer
    assert r.samples[0].answer == "2"


def test_wrong_arithmetic_is_corrected(world: tuple[ChatPipeline, ScriptedEngine]) -> None:
    pipeline, engine = world
    engine.enqueue(["12 * 15 = 170\nAnswer: 170"])
    r = asyncio.run(solve(pipeline, "12 boxes of 15?", k=1, seed=0, use_tools=False))
    s = r.samples[0]
    assert s.answer == "180" and s.corrected
    assert [(c.claimed, c.actual, c.ok) for c in s.checks] == [("170", "180", False)]
    assert engine.history[0][1].grammar is None  # no tools: plain decoding
    engine.enqueue(["12 * 15 = 170\nAnswer: 170"])
    r = asyncio.run(solve(pipeline, "12 boxes of 15?", k=1, seed=0, verify=False))
    assert r.answer == "170"


def test_unconstrained_rounds_are_bounded(world: tuple[ChatPipeline, ScriptedEngine]) -> None:
    pipeline, engine = world
    call = '{"name": "calculate", "arguments": {"expression": "2+3"}}'
    for _ in range(3):
        engine.enqueue([call])
    r = asyncio.run(solve(pipeline, "2+3?", k=1, seed=1, max_rounds=1))
    assert len(engine.history) == 2 and len(r.samples[0].tool_runs) == 1
    assert {p.grammar for _, p in engine.history} == {None}
    assert r.samples[0].answer == "5"  # its last word was another call: the tool result counts


def test_bad_options(world: tuple[ChatPipeline, ScriptedEngine]) -> None:
    pipeline, _ = world
    for kwargs, param in [({"k": 0}, "k"), ({"k": 17}, "k"), ({"temperature": 3.0},
                          "temperature"), ({"max_rounds": 9}, "max_rounds")]:
        with pytest.raises(InvalidRequest) as e:
            asyncio.run(solve(pipeline, "q", **kwargs))  # type: ignore[arg-type]
        assert e.value.param == param
    with pytest.raises(InvalidRequest) as e:
        asyncio.run(solve(pipeline, "  "))
    assert e.value.param == "question"


def test_run_tool_refusals_are_texts() -> None:
    assert run_tool(ToolCall("calculate", '{"expression": "__import__(1)"}')).startswith("error")
    assert run_tool(ToolCall("convert_units", '{"value": 1, "from_unit": "kg", '
                                              '"to_unit": "m"}')).startswith("error: cannot")
    assert run_tool(ToolCall("calculate", "{}")).startswith("error: bad arguments")
    assert run_tool(ToolCall("run_python", '{"code": "print(2**10)"}')) == "1024"
    assert run_tool(ToolCall("nope", "{}")) == "error: unknown tool nope"
    assert {t["function"]["name"] for t in TOOLS} == {"calculate", "convert_units", "run_python"}


def test_check_arithmetic_claims() -> None:
    checks = check_arithmetic("First 3 + 4 × 2 = 11, $2 * $3 = $6, then (11 - 1) / 4 = 2.5 "
                              "and 1,200 * 3 = 3,500. The year 2024 = nothing.")
    assert [(c.expression, c.claimed, c.actual, c.ok) for c in checks] == [
        ("3 + 4 × 2", "11", "11", True), ("$2 * $3", "6", "6", True),
        ("(11 - 1) / 4", "5/2", "5/2", True),
        ("1,200 * 3", "3500", "3600", False)]
    assert corrected("3500", checks) == "3600"
    assert corrected("11", checks) == "11" and corrected(None, checks) is None
