"""Logic mode: k sampled solutions through the one chat pipeline, with tools the model may call
(exact arithmetic and algebra, unit conversion, a Python sandbox), arithmetic re-checked with
sympy, final answers extracted and normalised, and a majority vote (self-consistency, Wang et
al. 2022, https://arxiv.org/abs/2203.11171).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from cove.engine.types import SamplingParams
from cove.errors import InvalidRequest
from cove.features.logic import MAX_K
from cove.features.logic.sandbox import run_python
from cove.features.logic.tools import calculate, extract_answer, majority
from cove.features.logic.units import convert
from cove.features.logic.verify import Check, check_arithmetic, corrected
from cove.pipeline import ChatMessage, ChatPipeline, ChatRequest
from cove.tools import ToolCall, parse_calls, parse_tools

SYSTEM = (
    "You solve word problems carefully. Work step by step and show each calculation. "
    "When a tool is available you may call it to compute exactly. "
    "End with a final line of the form 'Answer: <number>' (just the number, no units)."
)


def _fn(name: str, description: str, props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": props, "required": list(props),
                       "additionalProperties": False}}}


TOOLS = [
    _fn("calculate", "Evaluate arithmetic or algebra exactly, e.g. '3/4*120' or "
        "'solve(2*x + 3 - 11, x)'.", {"expression": {"type": "string"}}),
    _fn("convert_units", "Convert a value between units, e.g. 5 km to mi, 3 h to min.",
        {"value": {"type": "number"}, "from_unit": {"type": "string"},
         "to_unit": {"type": "string"}}),
    _fn("run_python", "Run a short Python program in a sandbox; what it prints is returned.",
        {"code": {"type": "string"}}),
]


@dataclass
class ToolRun:
    """One tool call the model made: ``name``, ``arguments`` (JSON text) and the ``result``
    text fed back to it (``"error: ..."`` when the tool refused)."""

    name: str
    arguments: str
    result: str


@dataclass
class Sample:
    """One sampled solution: its ``seed``, final ``text``, the ``answer`` extracted from it
    (normalised fraction text, or None), ``tool_runs``, arithmetic ``checks`` and whether the
    answer was ``corrected`` by them, and the ``finish_reason`` of its last turn."""

    seed: int
    text: str
    answer: str | None
    tool_runs: list[ToolRun] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    corrected: bool = False
    finish_reason: str = "stop"


@dataclass
class LogicResult:
    """The outcome: ``answer`` (majority, None when no sample had one), ``agreement``
    (votes for it / k, 0..1), ``votes``, every sample, the ``model`` and wall ``seconds``."""

    model: str
    question: str
    answer: str | None
    agreement: float
    votes: int
    k: int
    samples: list[Sample]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (checks carry their ``ok`` flag)."""
        out = asdict(self)
        for s, d in zip(self.samples, out["samples"], strict=True):
            for c, dc in zip(s.checks, d["checks"], strict=True):
                dc["ok"] = c.ok
        return out


def run_tool(call: ToolCall) -> str:
    """Execute one logic-mode tool call; a refusal becomes an ``"error: ..."`` text for the
    model (never raises for what the model asked)."""
    try:
        args = json.loads(call.arguments)
        if call.name == "calculate":
            return calculate(str(args["expression"]))
        if call.name == "convert_units":
            return convert(args["value"], str(args["from_unit"]), str(args["to_unit"]))
        if call.name == "run_python":
            r = run_python(str(args["code"]), timeout=5.0)
            if r.timed_out:
                return "error: timed out"
            return r.stdout.strip() if r.ok else f"error: {r.stderr.strip()[-500:]}"
        return f"error: unknown tool {call.name}"
    except InvalidRequest as e:
        return f"error: {e.message}"
    except (ValueError, KeyError, TypeError) as e:
        return f"error: bad arguments ({e})"


def check_options(k: int, temperature: float, max_rounds: int) -> None:
    """Validate logic-mode options.

    Raises:
        InvalidRequest: ``k`` outside 1..16, ``temperature`` outside 0..2, or ``max_rounds``
            outside 0..5 (``param`` names the field).
    """
    if not 1 <= k <= MAX_K:
        raise InvalidRequest(f"k must be between 1 and {MAX_K}", param="k")
    if not 0 <= temperature <= 2:
        raise InvalidRequest("temperature must be between 0 and 2", param="temperature")
    if not 0 <= max_rounds <= 5:
        raise InvalidRequest("max_rounds must be between 0 and 5", param="max_rounds")


async def _sample(pipeline: ChatPipeline, question: str, model: str | None, seed: int,
                  temperature: float, max_tokens: int, max_rounds: int, use_tools: bool,
                  verify: bool, constrained: bool) -> Sample:
    spec = parse_tools(TOOLS, "auto") if use_tools else None
    system = SYSTEM if spec is None or constrained else f"{SYSTEM}\n\n{spec.describe()}"
    messages = [ChatMessage("system", system), ChatMessage("user", question)]
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
    explicit = frozenset({"max_tokens", "temperature", "seed"})
    runs: list[ToolRun] = []
    for round_ in range(max_rounds + 1):
        tools = spec if constrained and round_ < max_rounds else None
        stream = await pipeline.start_chat(ChatRequest(messages, params, model, explicit,
                                                       tools=tools))
        result = await stream.collect()
        calls = result.tool_calls
        if spec is not None and not constrained and round_ < max_rounds:
            calls = parse_calls(result.content, spec) or []
        if not calls:
            break
        messages.append(ChatMessage("assistant", "", tool_calls=[
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls]))
        for call in calls:
            output = await asyncio.to_thread(run_tool, call)
            runs.append(ToolRun(call.name, call.arguments, output))
            messages.append(ChatMessage("tool", output, tool_call_id=call.id))
    text = result.content
    answer = None if spec and parse_calls(text, spec) else extract_answer(text)
    if answer is None and runs and not runs[-1].result.startswith("error"):
        answer = extract_answer(runs[-1].result)  # the model's last word was a tool call
    checks = check_arithmetic(text) if verify else []
    fixed = corrected(answer, checks)
    return Sample(seed, text, fixed, runs, checks, fixed != answer, result.finish_reason)


async def solve(pipeline: ChatPipeline, question: str, *, model: str | None = None, k: int = 5,
                temperature: float = 0.7, seed: int | None = None, max_tokens: int = 384,
                max_rounds: int = 3, use_tools: bool = True, verify: bool = True,
                constrained: bool = False, parallel: int | None = None) -> LogicResult:
    """Solve ``question`` by self-consistency: ``k`` samples (seeds ``seed``, ``seed + 1``,
    ...; a random base when None) at ``temperature``, each allowed up to ``max_rounds`` rounds
    of tool calls (``use_tools``) before it must answer, each answer corrected by the
    arithmetic checks (``verify``); then a majority vote. The tools are described in the
    system prompt and calls are parsed from the reply (:func:`cove.tools.parse_calls`); with
    ``constrained`` they go through the pipeline's tool calling instead (the chat template's
    tools and a grammar that only admits valid calls or an answer: exact, and since the engine
    checks the grammar against the drawn token first, barely slower). At most ``parallel``
    samples run at once (default: the model's slots, ``settings.n_parallel``).

    Raises:
        InvalidRequest: an empty question or options out of range (:func:`check_options`),
            and whatever :meth:`ChatPipeline.start_chat` raises (ModelNotFound, Overloaded,
            ContextLengthExceeded, ...).
    """
    if not question.strip():
        raise InvalidRequest("the question is empty", param="question")
    check_options(k, temperature, max_rounds)
    base = random.randrange(2**31) if seed is None else seed
    name = pipeline.resolve(model).name
    limit = asyncio.Semaphore(parallel or pipeline.settings.n_parallel)
    start = time.monotonic()

    async def one(i: int) -> Sample:
        async with limit:
            return await _sample(pipeline, question, model, base + i, temperature, max_tokens,
                                 max_rounds, use_tools, verify, constrained)

    tasks = [asyncio.ensure_future(one(i)) for i in range(k)]
    try:
        samples = list(await asyncio.gather(*tasks))
    finally:  # one sample failed (or the caller went away): stop the others
        for t in tasks:
            t.cancel()
    vote = majority([s.answer for s in samples])
    votes = sum(1 for s in samples if vote.answer is not None and s.answer == vote.answer)
    return LogicResult(name, question, vote.answer, vote.agreement, votes, k, samples,
                       time.monotonic() - start)
