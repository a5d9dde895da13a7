"""Fixtures of the brainstorm tests: a scripted app whose model answers by prompt."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

import pytest

from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from tests.conftest import FakeWorld
from tests.features.responder import answer_by_prompt

LENS_IDEAS: dict[str, list[tuple[str, str]]] = {}


def ideas_json(ideas: list[tuple[str, str]]) -> str:
    return json.dumps({"ideas": [{"title": t, "pitch": p, "why": "It could work."}
                                 for t, p in ideas]})


def scores_json(value: int, n: int = 3) -> str:
    return json.dumps({f"c{i}": value for i in range(1, n + 1)})


class Brain:
    """What the scripted model answers: ``ideas(lens instruction) -> [(title, pitch)]`` for
    generation prompts and ``score(title) -> 1..10`` for scoring prompts; ``prompts`` records
    every prompt."""

    def __init__(self) -> None:
        self.ideas: Callable[[str], list[tuple[str, str]]] = lambda prompt: []
        self.score: Callable[[str], int] = lambda title: 5
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if "Rate this idea" in prompt:
            title = re.search(r"Idea: (.*?): ", prompt).group(1)  # type: ignore[union-attr]
            n = len(re.findall(r"^c\d+: ", prompt, re.M))
            return scores_json(self.score(title), n)
        return ideas_json(self.ideas(prompt))


@pytest.fixture
def brain() -> Brain:
    return Brain()


@pytest.fixture
def world(settings: Settings, brain: Brain) -> Iterator[FakeWorld]:
    engine = ScriptedEngine(name="scripted:latest", n_ctx=4096)
    answer_by_prompt(engine, brain)
    w = FakeWorld(settings, engine)
    with w.client:
        yield w
