"""The brainstorm over a scripted model answering by prompt: exact deduplication, grouping,
ranking and event order; limits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cove.errors import InvalidRequest, ModelNotFound
from cove.features.ideas import MAX_IDEAS
from cove.features.ideas.service import Brainstorm, brainstorm, check
from tests.conftest import FakeWorld
from tests.features.ideas.conftest import Brain

BIKES = [("Bike repair classes", "Free classes teaching people to fix their own bicycles."),
         ("Bike commuting bonus", "Employers pay staff a bonus for cycling to work."),
         ("Bike lanes paint day", "Neighbours paint temporary bicycle lanes on a Sunday.")]
GARDENS = [("Rooftop vegetable gardens", "Grow vegetables on flat office roofs."),
           ("School garden plots", "Every class tends a vegetable garden plot at school."),
           ("Garden seed swap", "A monthly market where gardeners swap vegetable seeds.")]
# paraphrases of BIKES[1] and GARDENS[0]
REPEATS = [("Cycle to work bonus", "Companies pay employees a bonus for cycling to the office."),
           ("Rooftop vegetable gardens", "Grow vegetables on flat office roofs!"),
           ("Garden seed swap", "A monthly market where gardeners swap vegetable seeds.")]


def run(world: FakeWorld, **kw: Any) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        pipeline = world.app.state.pipeline
        return [e async for e in brainstorm(pipeline, Brainstorm(**{"max_tokens": 1000, **kw}))]
    return asyncio.run(go())


def by_lens(brain: Brain, table: dict[str, list[tuple[str, str]]]) -> None:
    def ideas(prompt: str) -> list[tuple[str, str]]:
        for key, value in table.items():
            if key in prompt:
                return value
        return []
    brain.ideas = ideas


def test_duplicates_dropped_grouped_and_ranked(world: FakeWorld, brain: Brain) -> None:
    by_lens(brain, {"practical, concrete": BIKES, "another field": REPEATS,
                    "Invert the problem": GARDENS})
    scores = {"Bike repair classes": 9, "Bike commuting bonus": 4, "Bike lanes paint day": 6,
              "Rooftop vegetable gardens": 7, "School garden plots": 2, "Garden seed swap": 8}
    brain.score = lambda title: scores.get(title, 1)
    events = run(world, goal="Make our town greener", n=6, seed=1)
    types = [e["type"] for e in events]
    # 1.25 * 6 / 3 -> 3 requests (direct, analogy, inversion), taken in that order, until six
    # distinct ideas are in: the 9th candidate is never looked at
    cands = [(e["idea"]["id"], e["idea"]["title"], e["idea"]["duplicate_of"])
             for e in events if e["type"] == "candidate"]
    assert cands == [("i1", "Bike repair classes", None), ("i2", "Bike commuting bonus", None),
                     ("i3", "Bike lanes paint day", None), ("i4", "Cycle to work bonus", "i2"),
                     ("i5", "Rooftop vegetable gardens", None),
                     ("i6", "Garden seed swap", None),
                     ("i7", "Rooftop vegetable gardens", "i5"),
                     ("i8", "School garden plots", None)]
    done = events[-1]
    assert done["type"] == "done" and done["duplicates"] == 2 and done["candidates"] == 8
    assert [i["title"] for i in done["ideas"]] == sorted(scores, key=lambda t: -scores[t])
    assert [i["rank"] for i in done["ideas"]] == [1, 2, 3, 4, 5, 6]
    assert done["ideas"][0]["score"] == 9.0
    assert done["ideas"][0]["scores"] == {"impact": 9.0, "feasibility": 9.0, "novelty": 9.0}
    # two themes, named by their words
    groups = done["groups"]
    assert len(groups) == 2
    by_name = {g["name"]: {next(i["title"] for i in done["ideas"] if i["id"] == x)
                           for x in g["ideas"]} for g in groups}
    bike = next(n for n in by_name if "Bike" in n)
    assert by_name[bike] == {t for t, _ in BIKES}
    garden = next(n for n in by_name if n != bike)
    assert "Garden" in garden or "Vegetable" in garden
    assert all(i["group"] in by_name for i in done["ideas"])
    # event order: start; candidates before groups; each score after its candidate; done last
    assert types[0] == "start" and types[-1] == "done"
    assert max(i for i, t in enumerate(types) if t == "candidate") < types.index("group")
    for e in (e for e in events if e["type"] == "score"):
        cand = next(i for i, c in enumerate(events)
                    if c["type"] == "candidate" and c["idea"]["id"] == e["id"])
        assert cand < events.index(e)
    assert len([t for t in types if t == "score"]) == 6


def test_top_up_round_when_duplicates_leave_too_few(world: FakeWorld, brain: Brain) -> None:
    # every lens writes the same three ideas, except when told what to avoid
    brain.ideas = lambda p: GARDENS if "Not these" in p else BIKES
    events = run(world, goal="Greener town", n=6, seed=3, score_samples=0)
    done = events[-1]
    assert len(done["ideas"]) == 6
    assert any("Not these (already have them): Bike" in p for p in brain.prompts)
    assert all(i["score"] is None and i["scores"] == {} for i in done["ideas"])


def test_stops_once_n_distinct_ideas_are_in(world: FakeWorld, brain: Brain) -> None:
    brain.ideas = lambda p: BIKES if "concrete" in p else GARDENS
    events = run(world, goal="Greener town", n=2, seed=3)
    done = events[-1]
    assert [i["title"] for i in done["ideas"]] and len(done["ideas"]) == 2
    assert done["candidates"] == 2


def test_criteria_and_constraints_reach_the_prompts(world: FakeWorld, brain: Brain) -> None:
    brain.ideas = lambda p: BIKES
    run(world, goal="Greener town", n=3, constraints=["under 100 euros"],
        criteria=["cheap", "fun"], seed=5)
    gen = [p for p in brain.prompts if "Rate this idea" not in p]
    rate = [p for p in brain.prompts if "Rate this idea" in p]
    assert gen and all("Goal: Greener town\nConstraints:\n- under 100 euros" in p for p in gen)
    assert rate and all("c1: cheap\nc2: fun" in p for p in rate)
    assert len(rate) == 3  # one prompt per idea (its two scorings differ by seed)


@pytest.mark.parametrize(("kw", "param"), [
    ({"goal": " "}, "goal"),
    ({"goal": "x" * 2001}, "goal"),
    ({"goal": "g", "n": MAX_IDEAS + 1}, "n"),
    ({"goal": "g", "n": 0}, "n"),
    ({"goal": "g", "criteria": ["c"] * 11}, "criteria"),
    ({"goal": "g", "criteria": ["x" * 301]}, "criteria[0]"),
    ({"goal": "g", "constraints": ["x" * 301]}, "constraints[0]"),
    ({"goal": "g", "max_tokens": 5}, "max_tokens"),
])
def test_limits(kw: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        check(Brainstorm(**kw))
    assert e.value.param == param


def test_unknown_model_before_any_event(world: FakeWorld) -> None:
    with pytest.raises(ModelNotFound):
        run(world, goal="g", model="nope:1b")
