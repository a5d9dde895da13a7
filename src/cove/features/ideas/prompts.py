"""What the brainstorm asks the model: prompting lenses, the JSON schemas its answers are
constrained to, and reading those answers back (salvaging the complete ideas of an answer
that ``max_tokens`` cut short).

Lenses are classic creativity prompts (analogy and inversion from Michalko's *Thinkertoys*,
removing a constraint and combining two things from SCAMPER, a named user's point of view from
design thinking's personas); each request gets one, so a batch of requests looks at the goal
from different sides instead of sampling the same list again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

PER_REQUEST = 3  # ideas asked of one request (one prompt read, three ideas written)
TITLE_CHARS, TEXT_CHARS = 100, 300  # longest title, pitch and why kept


@dataclass(frozen=True)
class Lens:
    """A prompting lens: a short ``name`` and the ``instruction`` added to the request."""

    name: str
    instruction: str


LENSES = (
    Lens("direct", "Give practical, concrete ideas."),
    Lens("analogy", "Borrow from another field: take how nature, a game or another industry "
         "solves a similar problem and transfer it."),
    Lens("inversion", "Invert the problem: think how to make it worse, then turn each of "
         "those around into an idea."),
    Lens("remove a constraint", "Drop one assumption everyone makes about this goal and see "
         "what becomes possible."),
    Lens("combine", "Combine two existing things that are rarely put together."),
    Lens("user: a busy parent", "Think as a busy parent with ten spare minutes a day."),
    Lens("user: a retired engineer", "Think as a retired engineer with time and a workshop."),
    Lens("user: a student", "Think as a student with no budget and many friends."),
    Lens("extreme scale", "Imagine it must work for a million people, or for one person."),
    Lens("low tech", "Use only paper, people and things found in any home."),
    Lens("future", "Imagine it is ten years from now; what would be obvious then?"),
    Lens("cheap first step", "Ideas that can start this week at almost no cost."),
)

TEMPERATURES = (0.8, 1.0, 1.2)  # cycled with the lenses, so each lens is sampled hot and cool

SYSTEM = ("You are a brainstorming partner. You answer with JSON only. Each idea has a short "
          "title, a one-sentence pitch and one sentence on why it could work. Ideas must be "
          "different from each other.")


def idea_schema(count: int = PER_REQUEST) -> dict[str, Any]:
    """JSON schema of one generation: ``{"ideas": [{"title", "pitch", "why"}] * count}``.

    The strings have no ``maxLength``: llama.cpp writes a bounded repetition out as nested
    optional rules, and sampling against them was about twice as slow (120 tokens of the
    bundled model: 185 s bounded vs 97 s unbounded on the shared machine); ``max_tokens``
    bounds the answer and :func:`read_ideas` trims the texts instead."""
    item = {"type": "object", "additionalProperties": False,
            "required": ["title", "pitch", "why"],
            "properties": {k: {"type": "string"} for k in ("title", "pitch", "why")}}
    return {"type": "object", "additionalProperties": False, "required": ["ideas"],
            "properties": {"ideas": {"type": "array", "items": item,
                                     "minItems": count, "maxItems": count}}}


def rubric_schema(n_criteria: int) -> dict[str, Any]:
    """JSON schema of one scoring: ``{"c1": 1..10, ..., "cN": 1..10}`` (integers)."""
    props = {f"c{i}": {"type": "integer", "enum": list(range(1, 11))}
             for i in range(1, n_criteria + 1)}
    return {"type": "object", "additionalProperties": False, "required": list(props),
            "properties": props}


def brief(goal: str, constraints: list[str]) -> str:
    """The goal and its constraints as the shared start of every prompt (kept identical across
    a brainstorm's requests so the scheduler can share their prompt cells)."""
    text = f"Goal: {goal}"
    if constraints:
        text += "\nConstraints:\n" + "\n".join(f"- {c}" for c in constraints)
    return text


def generation_prompt(goal: str, constraints: list[str], lens: Lens,
                      avoid: list[str] | None = None, count: int = PER_REQUEST) -> str:
    """The user message of one generation request; ``avoid`` lists titles already found (for
    a top-up round, or "more like this")."""
    text = f"{brief(goal, constraints)}\n\n{lens.instruction}\nGive {count} different ideas."
    if avoid:
        text += "\nNot these (already have them): " + "; ".join(avoid[:20])
    return text


def scoring_prompt(goal: str, constraints: list[str], criteria: list[str],
                   idea: dict[str, Any]) -> str:
    """The user message of one scoring request: the idea and the criteria as ``c1..cN``."""
    rubric = "\n".join(f"c{i}: {c}" for i, c in enumerate(criteria, 1))
    return (f"{brief(goal, constraints)}\n\nRate this idea from 1 (poor) to 10 (excellent) on "
            f"each criterion.\n{rubric}\n\nIdea: {idea['title']}: {idea['pitch']} "
            f"({idea['why']})")


_OBJECT_START = re.compile(r"\{\s*\"title\"")


def read_ideas(text: str) -> list[dict[str, str]]:
    """The ideas of one answer: ``[{"title", "pitch", "why"}]`` (white space collapsed,
    trimmed to :data:`TITLE_CHARS` / :data:`TEXT_CHARS`), from the
    whole JSON or, when it was cut short, from each complete idea object in it. Ideas whose title or
    pitch is under three characters are dropped; never raises."""
    found: list[Any] = []
    try:
        data = json.loads(text)
        found = data.get("ideas", []) if isinstance(data, dict) else []
        found = found if isinstance(found, list) else []
    except ValueError:
        decoder = json.JSONDecoder()
        for m in _OBJECT_START.finditer(text):
            try:
                obj, _ = decoder.raw_decode(text, m.start())
            except ValueError:
                continue
            found.append(obj)
    out = []
    for obj in found:
        if not isinstance(obj, dict):
            continue
        idea = {k: " ".join(str(obj.get(k, "")).split())[:limit]
                for k, limit in (("title", TITLE_CHARS), ("pitch", TEXT_CHARS),
                                 ("why", TEXT_CHARS))}
        if len(idea["title"]) >= 3 and len(idea["pitch"]) >= 3:
            out.append(idea)
    return out


def read_scores(text: str, n_criteria: int) -> list[float] | None:
    """The criterion scores ``[c1..cN]`` (1..10) of one scoring answer, or None when it does
    not parse or misses a criterion."""
    try:
        data = json.loads(text)
        values = [float(data[f"c{i}"]) for i in range(1, n_criteria + 1)]
    except (ValueError, KeyError, TypeError):
        return None
    return [min(10.0, max(1.0, v)) for v in values]
